"""A run's records tell the truth (issue #16): Ctrl-C right after an epoch line names the epoch
of the last.pt on disk (and that resume works), resuming a complete run trains nothing and
says so, and ``keep_last=False`` drops last.pt of a complete run."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path

import pytest

import kit.train.checkpoint as checkpoint
from kit.config import Config
from kit.recipe import parse_args
from kit.runfolder import BEST, LAST, read_metrics
from kit.train import fit
from tests._triggers import assert_documented


class _SigintOnLine(logging.Handler):
    """Sends this process a real SIGINT when a log line starting with ``prefix`` appears."""

    def __init__(self, prefix: str) -> None:
        super().__init__(logging.INFO)
        self.prefix, self.lines = prefix, []

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        self.lines.append(line)
        if line.startswith(self.prefix):
            os.kill(os.getpid(), signal.SIGINT)


def _interrupt_at(cfg: Config, prefix: str, caplog) -> tuple[Path, str]:
    """Run ``cfg`` with a SIGINT right after the log line ``prefix``: (run folder, warnings)."""
    handler, log = _SigintOnLine(prefix), logging.getLogger("kit")
    log.addHandler(handler)
    try:  # not quiet: the epoch lines are logged at INFO
        with caplog.at_level(logging.INFO, logger="kit"), pytest.raises(SystemExit) as info:
            fit(cfg.replace(quiet=False))
    finally:
        log.removeHandler(handler)
    assert info.value.code == 130
    assert any(line.startswith(prefix) for line in handler.lines), "the epoch line never came"
    (run_dir,) = Path(cfg.output_dir).iterdir()
    return run_dir, "\n".join(
        r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
    )


def test_ctrl_c_right_after_an_epoch_line_names_the_saved_epoch_and_that_resume_works(
    tiny_cfg, caplog
):
    # the epoch-2 line is logged before epoch 2's last.pt is written: on disk is epoch 1
    run_dir, text = _interrupt_at(tiny_cfg.replace(epochs=3), "epoch 2/3", caplog)
    assert checkpoint.last_epoch(run_dir / LAST) == 1
    assert f"last.pt holds epoch 1 of 3: continue with --resume {run_dir}" in text
    assert "epoch 2" not in text.split("interrupted", 1)[1]  # no claim about the lost epoch
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "interrupted" and status["epoch"] == 1
    # the hint works as written
    resumed = fit(parse_args(Config(), ["--resume", str(run_dir)]))
    assert resumed.status == "complete"
    assert [r["epoch"] for r in read_metrics(run_dir)] == [1, 2, 3]


def test_ctrl_c_in_the_last_epoch_of_two_names_epoch_1_of_2(tiny_cfg, caplog):
    cfg = tiny_cfg.replace(epochs=2, max_steps_per_epoch=1)
    run_dir, text = _interrupt_at(cfg, "epoch 2/2", caplog)
    assert checkpoint.last_epoch(run_dir / LAST) == 1
    assert f"last.pt holds epoch 1 of 2: continue with --resume {run_dir}" in text
    assert_documented("interrupted-resumable", text)


def test_ctrl_c_before_any_saved_epoch_points_at_no_resume(tiny_cfg, caplog):
    run_dir, text = _interrupt_at(tiny_cfg.replace(epochs=2), "epoch 1/2", caplog)
    assert not (run_dir / LAST).exists()
    assert "nothing to resume: start the run again" in text and "--resume" not in text
    assert_documented("interrupted", text)


def test_resuming_a_complete_run_trains_nothing_and_says_so(tiny_cfg, caplog, monkeypatch):
    run = fit(tiny_cfg.replace(keep_last=False))
    assert not (run.run_dir / LAST).exists() and (run.run_dir / BEST).is_file()
    before = {p.name: p.stat().st_mtime_ns for p in run.run_dir.iterdir()}

    def no_training(*args, **kwargs):
        raise AssertionError("a complete run was trained again")

    monkeypatch.setattr(sys.modules["kit.train.folder"], "train_run", no_training)
    with caplog.at_level(logging.WARNING, logger="kit"):
        again = fit(parse_args(Config(), ["--resume", str(run.run_dir)]))
    assert "is complete (best epoch" in caplog.text and "nothing to train" in caplog.text
    assert again.run_dir == run.run_dir and again.best_score == run.best_score
    assert {p.name: p.stat().st_mtime_ns for p in run.run_dir.iterdir()} == before


def test_resuming_a_complete_one_epoch_run_names_its_best_epoch_and_score(tiny_cfg, caplog):
    run = fit(tiny_cfg.replace(epochs=1, max_steps_per_epoch=1, keep_last=False))
    with caplog.at_level(logging.WARNING, logger="kit"):
        again = fit(parse_args(Config(), ["--resume", str(run.run_dir)]))
    assert f"{run.run_dir} is complete (best epoch 1, val macro F1 {run.best_score:.4f})" in (
        caplog.text
    )
    assert again.run_dir == run.run_dir
    assert_documented("resume-complete", caplog.text)


def test_keep_last_is_the_default(tiny_cfg):
    run = fit(tiny_cfg.replace(epochs=1))
    assert (run.run_dir / LAST).is_file()
