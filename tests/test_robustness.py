"""Issue 15, second robustness pass: a resume cannot destroy a finished run, a full disk during
``torch.save`` is reported and recorded, data and config errors leave no run folder, SIGTERM
stops a run like Ctrl-C, ``--smoke`` checks before it shrinks, and kit's own errors (only
those) end a command with one ``error:`` line."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import kit
import kit.runfolder as rundir
from kit.cli import run_cli
from kit.config import Config, fields_with_role, resumable_fields, smoke_note
from kit.data import DataError
from kit.errors import RunBusyError
from kit.io import OutputError
from kit.losses import LOSSES
from kit.recipe import main as kit_main
from kit.train import checkpoint, fit
from kit.train.setup import check
from tests._triggers import assert_documented

ROOT = Path(__file__).resolve().parents[1]


def checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (hidden leftovers included), by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def finished(tiny_base: Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished one-epoch run folder (never modified by the tests: they compare checksums)."""
    out = tmp_path_factory.mktemp("finished")
    return fit(tiny_base.replace(output_dir=str(out), epochs=1)).run_dir


# ---- 2: --resume with changed fields ------------------------------------------------------


def test_resume_of_a_finished_run_with_another_model_or_head_changes_nothing(finished: Path):
    """The issue's scenario: before, a warning, then a load_state_dict RuntimeError, a config.json
    naming the new model beside the old weights, and status.json saying failed."""
    before = checksums(finished)
    for flags, field in ((["--model", "resnet10t"], "model"), (["--head", "multi"], "head")):
        with pytest.raises(ValueError, match=rf"cannot resume {finished} with changed {field}: "):
            fit(kit.parse_args(Config(), ["--resume", str(finished), *flags]))
    assert checksums(finished) == before
    assert json.loads((finished / "status.json").read_text())["status"] == "complete"


def test_what_may_change_on_resume_is_declared_in_field_metadata():
    may = set(resumable_fields())
    assert set(fields_with_role("run", "machine", "output")) <= may
    # experiment fields are fixed unless their metadata says otherwise, and these two say so:
    assert may & set(fields_with_role("experiment")) == {"folds", "pretrained_file"}
    # the schedule, the weights' shapes, the data and the split are never among them
    assert not may & {"epochs", "lr", "model", "head", "data_dir", "seed", "image_size"}


# ---- 3: a full disk while torch.save writes -------------------------------------------------


def test_full_disk_in_torch_save_is_reported_and_recorded(tiny_cfg: Config, monkeypatch):
    real_save, saves = torch.save, []

    def save(obj, f, *args, **kwargs):
        saves.append(Path(getattr(f, "name", f)).name)  # kit passes the open temporary file
        if saves[-1].startswith(".last.pt.") and len([s for s in saves if "last" in s]) == 2:
            f.write(b"x" * 4096)  # what torch had written when the disk filled up
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4096")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", save)
    with pytest.raises(OutputError) as info:
        fit(tiny_cfg.replace(epochs=3))
    message = str(info.value)
    assert "last.pt: the disk is full at" in message
    assert " MB free). Nothing was replaced" in message
    assert "--resume" in message
    assert_documented("checkpoint-disk-full", message)
    (run_dir,) = Path(tiny_cfg.output_dir).iterdir()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and "the disk is full at" in status["error"]
    assert torch.load(run_dir / "last.pt", weights_only=True)["state"]["epoch"] == 1
    assert not list(run_dir.glob(".*.tmp")), "the temporary file must be freed"


def test_other_runtime_errors_of_torch_save_stay_bugs(tiny_cfg: Config, monkeypatch):
    def save(obj, f, *args, **kwargs):
        raise RuntimeError("some other torch failure")

    monkeypatch.setattr(checkpoint.torch, "save", save)
    with pytest.raises(RuntimeError, match="some other torch failure") as info:
        fit(tiny_cfg)
    assert not isinstance(info.value, OSError)


# ---- 9: data and config errors leave no run folder -------------------------------------------


def test_a_bad_fold_count_leaves_no_kfold_parent(tiny_cfg: Config):
    out = Path(tiny_cfg.output_dir)
    with pytest.raises(ValueError, match=r"36 people cannot fill 40 folds .*--n-folds"):
        fit(tiny_cfg.replace(folds="all", n_folds=40))
    assert not out.exists() or list(out.iterdir()) == []


def test_a_bad_last_pt_leaves_the_resumed_folder_untouched(finished: Path, tmp_path: Path):
    copy = tmp_path / finished.name
    copy.mkdir()
    for name in ("config.json", "status.json", "summary.json"):
        (copy / name).write_bytes((finished / name).read_bytes())
    (copy / "last.pt").write_bytes(b"half a checkpoint")
    before = checksums(copy)
    with pytest.raises(ValueError, match="cannot read checkpoint") as err:
        fit(kit.parse_args(Config(), ["--resume", str(copy)]))
    assert checksums(copy) == before
    assert_documented("checkpoint-unreadable", str(err.value))


def test_resume_of_a_folder_without_last_pt_is_refused_naming_it(tiny_cfg: Config, tmp_path: Path):
    folder = tmp_path / "not-a-run"
    folder.mkdir()
    with pytest.raises(FileNotFoundError, match=f"cannot resume {folder}: ") as err:
        fit(tiny_cfg.replace(resume=str(folder)))
    assert list(folder.iterdir()) == []
    assert_documented("resume-no-checkpoint", str(err.value))


# ---- 10: SIGTERM ------------------------------------------------------------------------------

_STOPPED_IN_EPOCH_2 = """
import sys, time
from pathlib import Path
import kit
import kit.train.loop as loop

marker, real = Path(sys.argv[1]), loop.train_one_epoch

def slow_second_epoch(parts, loader, criterion, cfg, epoch, *rest, **kwargs):
    if epoch == 2:
        marker.write_text("in epoch 2")
        time.sleep(120)  # SIGTERM arrives here, mid-epoch
    return real(parts, loader, criterion, cfg, epoch, *rest, **kwargs)

loop.train_one_epoch = slow_second_epoch
kit.main(kit.Config(model="test_resnet", device="cpu", workers=0), argv=sys.argv[2:])
"""


@pytest.mark.slow  # a real SIGTERM to a fresh interpreter mid-epoch; plain pytest keeps Ctrl-C's
def test_sigterm_mid_epoch_stops_like_ctrl_c(tiny_cfg: Config, tmp_path: Path):
    marker, out = tmp_path / "marker", Path(tiny_cfg.output_dir)
    flags = [
        "--data-dir",
        tiny_cfg.data_dir,
        "--output-dir",
        str(out),
        "--epochs",
        "3",
        "--image-size",
        "32",
        "24",
        "--max-steps-per-epoch",
        "2",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with subprocess.Popen(
        [sys.executable, "-c", _STOPPED_IN_EPOCH_2, str(marker), *flags],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        deadline = time.time() + 240
        while not marker.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        assert marker.exists(), proc.communicate()[0] if proc.poll() is not None else "no epoch 2"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 143, output
    assert "Traceback" not in output
    assert "terminated (SIGTERM); last.pt holds epoch 1 of 3: continue with --resume" in output
    (run_dir,) = out.iterdir()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "interrupted" and status["epoch"] == 1
    assert torch.load(run_dir / "last.pt", weights_only=True)["state"]["epoch"] == 1
    assert pd.read_csv(run_dir / "metrics.csv")["epoch"].tolist() == [1]


_LOSS = "_test_robustness_loss"  # unregistered after each test that registers it


@contextlib.contextmanager
def _loss(forward: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[str]:
    """A registered loss whose value is ``forward(logits)``, for the test's length."""

    class _Loss(nn.Module):
        def forward(self, logits, target):
            return forward(logits)

    LOSSES.register(_LOSS, lambda **kwargs: _Loss())
    try:
        yield _LOSS
    finally:
        LOSSES.unregister(_LOSS)


def _sigterm(logits: torch.Tensor) -> torch.Tensor:
    """A real SIGTERM to this process in the middle of the first batch."""
    os.kill(os.getpid(), signal.SIGTERM)
    return logits.sum()


def test_sigterm_before_any_saved_epoch_is_refused_naming_no_resume(tiny_cfg: Config, caplog):
    cfg = tiny_cfg.replace(epochs=1, max_steps_per_epoch=1)
    with (
        _loss(_sigterm) as loss,
        caplog.at_level(logging.WARNING, logger="kit"),
        pytest.raises(SystemExit) as info,
    ):
        fit(cfg.replace(loss=loss))
    assert info.value.code == 143
    (run_dir,) = Path(cfg.output_dir).iterdir()
    assert not (run_dir / "last.pt").exists()
    assert "nothing to resume: start the run again" in caplog.text
    assert "--resume" not in caplog.text
    assert_documented("terminated", caplog.text)


def test_a_failure_that_cannot_be_recorded_still_raises_and_says_so(
    tiny_cfg: Config, caplog, monkeypatch
):
    real = rundir.write_status

    def write_status(run_dir, status, *args, **kwargs):
        if status == "failed":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(run_dir, status, *args, **kwargs)

    def boom(logits: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("boom")

    monkeypatch.setattr(rundir, "write_status", write_status)
    cfg = tiny_cfg.replace(epochs=1, max_steps_per_epoch=1)
    with (
        _loss(boom) as loss,
        caplog.at_level(logging.WARNING, logger="kit"),
        pytest.raises(RuntimeError, match="boom"),  # the error that stopped the run
    ):
        fit(cfg.replace(loss=loss))
    (run_dir,) = Path(cfg.output_dir).iterdir()
    assert f"could not record the failure in {run_dir / 'status.json'}" in caplog.text
    assert_documented("failure-unrecorded", caplog.text)


# ---- 11: --smoke checks first, then shrinks, and says what it changed --------------------------


def test_smoke_refuses_a_bad_image_size_instead_of_shrinking_it_away():
    with pytest.raises(ValueError, match=r"config field 'image_size' is \(4, 4\)"):
        check(kit.parse_args(Config(), ["--smoke", "--image-size", "4", "4"]))
    with pytest.raises(ValueError, match=r"config field 'batch_size'"):
        check(kit.parse_args(Config(), ["--smoke", "--batch-size", "0"]))


def test_smoke_says_what_it_shrank():
    cfg = Config(epochs=20, image_size=(380, 380), workers=4)
    note = smoke_note(cfg, check(cfg.replace(smoke=True)))
    assert note.startswith("smoke: ")
    assert_documented("smoke-shrunk", note)
    for change in ("epochs 20 -> 2", "image_size 380x380 -> 64x48", "workers 4 -> 0"):
        assert change in note
    assert "lr" not in note and "model" not in note  # what smoke keeps is not listed


# ---- 1: which errors are kit's own -------------------------------------------------------------


def _fails(err: BaseException):
    def main(argv: list[str]) -> int:
        raise err

    return main


@pytest.mark.parametrize(
    "err",
    [
        DataError("train.csv line 3, field 'age': bad"),
        FileNotFoundError("x: file not found"),
        RunBusyError("it is still running"),
        kit.KitError("a kit error"),
    ],
    ids=["data", "missing-file", "busy", "kit-error"],
)
def test_kit_errors_end_in_one_error_line_and_exit_2(err, capsys, monkeypatch):
    monkeypatch.delenv("KIT_DEBUG", raising=False)
    assert run_cli(_fails(err), []) == 2
    err_text = capsys.readouterr().err
    assert err_text == f"error: {err}\n"
    with pytest.raises(type(err)):  # --debug: the traceback instead
        run_cli(_fails(err), ["--debug"])
    monkeypatch.setenv("KIT_DEBUG", "1")
    with pytest.raises(type(err)):
        run_cli(_fails(err), [])


@pytest.mark.parametrize(
    "err", [TypeError("bug"), KeyError("bug"), AssertionError("bug"), RuntimeError("bug")]
)
def test_bugs_keep_their_traceback(err, monkeypatch):
    monkeypatch.delenv("KIT_DEBUG", raising=False)
    with pytest.raises(type(err)):
        run_cli(_fails(err), [])


def test_kit_main_trains_and_returns_the_run_or_exits_2(tiny_cfg: Config, capsys):
    out = Path(tiny_cfg.output_dir)
    run = kit_main(tiny_cfg.replace(epochs=1), argv=[])
    assert run.status == "complete" and run.run_dir.parent == out
    with pytest.raises(SystemExit) as info:
        kit_main(tiny_cfg, argv=["--data-dir", str(out / "nowhere")])
    assert info.value.code == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith("data folder not found (expected a folder holding train/ and eval/)")
    )
    assert len(list(out.iterdir())) == 1  # the bad run made no folder
