"""``python -m kit doctor`` and the one line a torchvision of another torch build gets."""

from __future__ import annotations

import pytest
import torch
import torchvision

from kit.__main__ import main as kit_main
from kit.doctor import OPTIONAL
from kit.torch_build import build_mismatch, reinstall_command
from tests._day_one_triggers import plant_torchvision, run_with_planted
from tests._triggers import assert_documented


@pytest.mark.parametrize(
    ("torch_v", "vision_v", "wrong"),
    [
        ("2.14.1+cu130", "0.29.1+cu130", None),
        ("2.6.0", "0.21.0", None),
        ("2.0.1+cpu", "0.15.2+cpu", None),
        ("2.13.0+cpu", "0.28.0", "builds differ"),  # the CPU-index case
        ("2.6.0", "0.20.1", "torch 2.6 needs torchvision 0.21"),
        ("2.6.0+cu124", "0.21.0+cu118", "builds differ"),
    ],
)
def test_build_mismatch(torch_v: str, vision_v: str, wrong: str | None) -> None:
    found = build_mismatch(torch_v, vision_v)
    assert found == wrong if wrong is None else wrong in found


def test_reinstall_command_follows_torchs_build() -> None:
    assert reinstall_command("2.13.0+cpu").endswith(
        "--index-url https://download.pytorch.org/whl/cpu"
    )
    assert reinstall_command("2.6.0+cu124").endswith("/whl/cu124")
    assert reinstall_command("2.6.0") == "pip install --force-reinstall torch torchvision"


def test_a_planted_mismatched_torchvision_is_one_line(tmp_path) -> None:
    """What a recipe prints when torchvision fails on its import: one error line naming both
    versions and the fix, exit code 2 (not timm's 50-line traceback)."""
    done = run_with_planted(plant_torchvision(tmp_path), "import kit.mixing")
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: torch ")
    assert "torchvision 0.28.0 are not one build" in lines[0]
    assert "torchvision::nms does not exist" in lines[0]
    assert "pip install --force-reinstall torch torchvision" in lines[0]
    assert "Traceback" not in done.stderr
    assert_documented("torchvision-build", lines[0])


def test_doctor_names_every_item(capsys) -> None:
    assert kit_main(["doctor"]) == 0
    out = capsys.readouterr().out
    names = [line.split()[1] for line in out.splitlines()]
    for item in ("python", "torch", "torchvision", "timm", "cuda", "disk", "hf", *OPTIONAL):
        assert item in names, f"{item} missing from:\n{out}"
    assert torch.__version__ in out and torchvision.__version__ in out
    assert "one build with torch (torchvision.ops.nms runs)" in out
    assert "GiB free of" in out


def test_doctor_flags_a_mismatched_torchvision(monkeypatch, capsys) -> None:
    monkeypatch.setattr(torchvision, "__version__", "0.28.0+cpu")
    assert kit_main(["doctor"]) == 1
    row = next(line for line in capsys.readouterr().out.splitlines() if "torchvision " in line)
    assert row.startswith("!!") and "0.28.0+cpu" in row and "not one build" in row


def test_doctor_with_a_planted_torchvision_says_so(tmp_path) -> None:
    done = run_with_planted(
        plant_torchvision(tmp_path),
        "from kit.__main__ import main; raise SystemExit(main(['doctor']))",
    )
    assert done.returncode == 1, done.stderr
    assert "!!  torchvision" in done.stdout and "0.28.0" in done.stdout


def test_kit_without_a_command_lists_them(capsys) -> None:
    assert kit_main([]) == 0
    assert "doctor" in capsys.readouterr().out
    assert kit_main(["doctr"]) == 2
