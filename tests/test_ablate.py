"""scripts/ablate.py, the table of docs/techniques.md, on a tiny fixture: runs trained side by
side (``--jobs 2``) give the table of runs trained one after the other, ``--from-runs``
tabulates finished runs without training, and a wrong row name is one ``error:`` line."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from scipy import stats

from tests import _proc

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "ablate.py"
TINY = ("--people", "24", "--eval-people", "6", "--epochs", "1", "--seeds", "1", "2")


def _ablate(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The script in its own process, forked warm (tests/_proc.py). Its string hash seed is a
    random one, as a user's ``python`` has, and each ``--jobs`` worker gets another: the table
    must not depend on them (no PYTHONHASHSEED pinned here)."""
    return _proc.run(
        [sys.executable, str(SCRIPT), "--work", str(work), *args],
        capture_output=True,
        text=True,
        timeout=900,
    )


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


def _script(monkeypatch: pytest.MonkeyPatch):
    spec = importlib.util.spec_from_file_location("ablate", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "ablate", module)  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def test_the_reference_column_is_kit_noise_seed_by_seed(monkeypatch):
    ablate = _script(monkeypatch)

    def row(*f1s: float) -> list:
        return [ablate.Scores({"macro_f1": f}, 0.0, None) for f in f1s]

    base, arm = row(0.60, 0.62, 0.64), row(0.70, 0.70, 0.76)
    assert ablate._vs(base, base) == "- | -"
    assert ablate._vs(arm, None) == "- | -"
    # the seed-by-seed differences 0.10, 0.08, 0.12: Student's paired interval
    low, high = stats.ttest_rel([0.70, 0.70, 0.76], [0.60, 0.62, 0.64]).confidence_interval()
    assert ablate._vs(arm, base) == f"+0.100 [{low:+.3f}, {high:+.3f}] | beyond noise"
    close = row(0.61, 0.66, 0.60)
    assert ablate._vs(close, base).endswith("| within noise")
    assert ablate._vs(row(0.7), row(0.6)) == "+0.100 | n/a"  # one seed: no spread
