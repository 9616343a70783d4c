"""Progress off a terminal (issue #16): plain lines every tenth of an epoch or every 30 s with
pictures/s and ETA, and status.json's heartbeat with the same figures."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

import pytest

import kit.progress as progress
import kit.runfolder as rundir
from kit.progress import Progress
from kit.train import fit
from tests import _proc

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(r"epoch 1/2 +\d+% \(\d+/2 batches\) +[\d.]+ img/s +ETA \d+:\d\d:\d\d")


@pytest.mark.slow  # a recipe's smoke training in its own process (forked warm: tests/_proc.py)
def test_a_smoke_run_whose_output_is_a_log_file_shows_progress_lines(tiny_data, tmp_path):
    argv = [
        sys.executable,
        str(ROOT / "recipes" / "baseline.py"),
        "--smoke",
        "--data-dir",
        str(tiny_data),
        "--output-dir",
        str(tmp_path / "runs"),
    ]
    # its stdout and stderr go to files, as under nohup or in CI: neither is a terminal
    done = _proc.run(argv, timeout=300, cwd=tmp_path)
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    assert LINE.search(text), text
    assert "\r" not in text  # no bar redrawn in place


def _fake_clock(monkeypatch) -> list[float]:
    now = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    return now


def test_a_line_every_tenth_or_every_30_seconds_and_a_heartbeat_with_each(monkeypatch, caplog):
    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: False, raising=False)
    now = _fake_clock(monkeypatch)
    beats: list[dict] = []
    with (
        caplog.at_level(logging.INFO, logger="kit"),
        Progress("epoch 3/9", 100, False, beats.append) as p,
    ):
        for _ in range(30):
            now[0] += 0.1
            p.step(8)
    lines = [r.getMessage() for r in caplog.records]
    assert [b["step"] for b in beats] == [10, 20, 30] and len(lines) == 3
    assert lines[0].startswith("epoch 3/9   10% (10/100 batches)  80.0 img/s  ETA 0:00:09")
    assert beats[0] == {"step": 10, "steps": 100, "percent": 10, "images_per_s": 80.0, "eta_s": 9.0}
    beats.clear()
    with Progress("slow", 1000, False, beats.append) as p:  # a tenth takes longer than 30 s
        for _ in range(70):
            now[0] += 1.0
            p.step(1)
    assert [b["step"] for b in beats] == [30, 60]


def test_the_heartbeat_reaches_status_json(tiny_cfg, monkeypatch):
    seen: list[dict] = []
    real = rundir.write_status

    def record(run_dir, status, epoch, error=None, progress=None):
        if progress is not None:
            seen.append({"status": status, "finished": epoch, **progress})
        real(run_dir, status, epoch, error, progress)

    monkeypatch.setattr(rundir, "write_status", record)
    monkeypatch.setattr(progress, "EVERY_FRACTION", 0.5)  # a beat after batch 2 of 3
    run = fit(tiny_cfg.replace(epochs=2, max_steps_per_epoch=3))
    # status.json: "epoch" is the last finished one, progress["epoch"] the one in training
    got = [(s["finished"], s["epoch"], s["step"], s["status"]) for s in seen]
    assert got == [(0, 1, 2, "running"), (1, 2, 2, "running")]
    assert all(s["images_per_s"] > 0 and s["eta_s"] >= 0 for s in seen)
    final = json.loads((run.run_dir / "status.json").read_text())
    assert final["status"] == "complete" and "progress" not in final
