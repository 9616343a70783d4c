"""scripts/ablate.py, the table of docs/techniques.md, on a tiny fixture: runs trained side by
side (``--jobs 2``) give the table of runs trained one after the other, ``--from-runs``
tabulates finished runs without training, and a wrong row name is one ``error:`` line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ablate.py"
TINY = ("--people", "24", "--eval-people", "6", "--epochs", "1", "--seeds", "1", "2")


def _ablate(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--work", str(work), *args],
        capture_output=True, text=True, timeout=900, env=env,
    )  # fmt: skip


def _scores(stdout: str) -> list[list[str]]:
    """The table's rows without the seconds column (timing is not a result)."""
    rows = [line.split("|")[1:-2] for line in stdout.splitlines() if line.startswith("| ")]
    assert rows, stdout
    return rows


@pytest.mark.slow
def test_side_by_side_runs_make_the_same_table_and_from_runs_trains_nothing(tmp_path):
    # a TTA row trains the row it re-scores (the baseline) and scores its checkpoints
    row = ("--only", "logit adjusted", "TTA hflip+shift (the baseline's checkpoints)")
    side = _ablate(tmp_path / "side", *TINY, *row, "--jobs", "2")
    one = _ablate(tmp_path / "one", *TINY, *row, "--jobs", "1")
    assert side.returncode == 0 and one.returncode == 0, side.stderr + one.stderr
    assert _scores(side.stdout) == _scores(one.stdout)
    table = _scores(side.stdout)
    assert [r[0].strip() for r in table[2:]] == list(row[1:])  # header, rule and the two rows
    assert table[2] != table[3]  # the TTA row scores other checkpoints
    runs = sorted((tmp_path / "side" / "runs").iterdir())
    tags = sorted(d.name.split("_", 1)[1] for d in runs)
    assert tags == ["baseline_s1", "baseline_s2", "logit_s1", "logit_s2"]
    again = _ablate(tmp_path / "side", *TINY, *row, "--from-runs")
    assert again.returncode == 0, again.stderr
    assert _scores(again.stdout) == _scores(side.stdout)
    assert sorted((tmp_path / "side" / "runs").iterdir()) == runs


def test_an_unknown_row_is_one_error_line_naming_the_rows(tmp_path):
    done = _ablate(tmp_path, "--only", "logit adjustd")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: --only: no row 'logit adjustd'") and "'logit adjusted'" in line
    assert not (tmp_path / "data").exists()  # checked before the fixture is drawn


@pytest.mark.slow  # it draws a fixture first
def test_from_runs_without_runs_says_to_train_first(tmp_path):
    done = _ablate(tmp_path, *TINY, "--only", "baseline", "--from-runs")
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: no finished run folder *_baseline_s1") and "--from-runs" in line
