"""scripts/gpu-check: on CPU it reports no GPU and exits 0; its plan and table are checked here
(the GPU runs themselves need a CUDA machine)."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from kit.bench.__main__ import build_parser
from tests import _proc

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu-check"


def _module():
    loader = importlib.machinery.SourceFileLoader("gpu_check", str(SCRIPT))
    spec = importlib.util.spec_from_loader("gpu_check", loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module


gc = _module()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: it would run")
def test_on_a_cpu_machine_it_says_so_and_exits_0():
    proc = _proc.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA GPU found" in proc.stdout


def test_the_plan_covers_every_setting_of_the_issue(tmp_path):
    steps = gc.plan(tmp_path, people=2700, python="py")
    benches = [s for s in steps if s.group == "bench"]
    seen = {
        (
            a[a.index("--model") + 1],
            "--channels-last" in a,
            a[a.index("--workers") + 1],
            a[a.index("--amp-dtype") + 1],
        )
        for a in (s.argv for s in benches)
    }
    for model in ("efficientnet_b0", "resnet50"):
        for dtype in ("bfloat16", "float16"):
            assert {(model, True, "8", dtype), (model, False, "8", dtype)} <= seen
    assert {("efficientnet_b0", True, w, "bfloat16") for w in ("4", "8", "16")} <= seen
    for s in benches:
        assert s.argv[s.argv.index("--image-size") + 1 :][:2] == ["224", "224"]
        assert "--amp" in s.argv and s.json
    names = [s.name for s in steps]
    for wanted in (
        "full-size layout",
        "train 1 epoch + submission",
        "score the submission",
        "determinism run 1",
        "determinism run 2",
        "ddp torchrun nccl",
        "torch.compile",
    ):
        assert wanted in names
    layout = steps[names.index("full-size layout")].argv
    assert layout[layout.index("--people") + 1] == "2700" and "384" in layout and "512" in layout
    assert "torch.distributed.run" in steps[names.index("ddp torchrun nccl")].argv
    assert "--compile" in steps[names.index("torch.compile")].argv
    det = [s.argv for s in steps if s.name.startswith("determinism")]
    assert det[0][:-1] == det[1][:-1] and det[0][-1] != det[1][-1]  # only the output differs
    assert sum(s.timeout_s for s in steps) < 90 * 60


def test_figures_and_the_table(tmp_path):
    bench = tmp_path / "b.json"
    bench.write_text(
        json.dumps(
            {
                "phases": {
                    "train_limit": {"images_per_s": 1000.0},
                    "train_cached": {"images_per_s": 950.0},
                },
                "ratios": {"b/a": {"value": 0.95}},
            }
        )
    )
    assert gc.bench_figures(str(bench)) == {"b/a": 0.95, "a img/s": 1000.0, "b img/s": 950.0}
    runs = []
    for k, f1 in enumerate(("0.5", "0.5", "0.4")):
        run = tmp_path / f"r{k}" / "20260101_x"
        run.mkdir(parents=True)
        (run / "metrics.csv").write_text(f"epoch,train_loss,val_macro_f1,seconds\n1,2.0,{f1},{k}\n")
        runs.append(gc.run_figures(run.parent))
    assert runs[0] == {"seconds": "0", "train_loss": "2.0", "val_macro_f1": "0.5"}
    step = lambda name: gc.Step(name, ["x"], 1)  # noqa: E731
    same = [
        gc.Result(step("determinism run 1"), 0, 1.0, runs[0]),
        gc.Result(step("determinism run 2"), 0, 1.0, runs[1]),
    ]
    assert gc.determinism(same) == "same"  # the seconds differ, the metrics do not
    assert gc.determinism([same[0], gc.Result(step("determinism run 2"), 0, 1.0, runs[2])]) == (
        "DIFFERENT"
    )
    text = gc.table([*same, gc.Result(step("ddp torchrun nccl"), 1, 2.0)])
    assert "| ddp torchrun nccl | FAILED (rc 1) | 2.0 | - |" in text
    assert "determinism (two identical runs): same" in text


def test_dry_run_prints_the_commands_without_a_gpu(capsys, tmp_path):
    assert gc.main(["--dry-run", "--work", str(tmp_path), "--people", "30"]) == 0
    out = capsys.readouterr().out
    assert "bench resnet50 cl=off w=8 amp=float16:" in out and "--people 30" in out


def test_every_bench_step_is_a_valid_kit_bench_command(tmp_path):
    for s in (s for s in gc.plan(tmp_path, python="py") if s.group == "bench"):
        args = build_parser().parse_args(s.argv[3:])  # after "py -m kit.bench"
        assert args.amp and args.amp_dtype in ("bfloat16", "float16")
