"""Run folders written by kit before issue #23's consolidation (commit adfceb7; how they were
made: tests/data/runs_adfceb7/README.md) are read by today's ledger, ``kit.predict``,
``kit.ensemble`` and ``--resume``; a resume trains what the old kit would have trained."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import kit
from kit.config import Config
from kit.ensemble.__main__ import main as ensemble_main
from kit.predict import main as predict_main
from kit.predict import probs_path
from kit.runfolder import PROB_COLUMNS, read_metrics, read_status
from kit.runs.__main__ import main as runs_main
from kit.train import fit

OLD = Path(__file__).parent / "data" / "runs_adfceb7"
COMPLETE, INTERRUPTED = "20261207-213455_complete", "20261207-213532_interrupted"
#: The column of metrics.csv that is a timing, not a result.
UNSTABLE = ["seconds"]


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the folder the old runs ran in (their config.json names ``data`` and ``runs``
    relative to it): the pictures they trained on and the runs."""
    root = tmp_path_factory.mktemp("old")
    shutil.copytree(OLD / "data", root / "data")
    for run in (COMPLETE, INTERRUPTED):
        shutil.copytree(OLD / run, root / "runs" / run)
    return root


@pytest.fixture(autouse=True)
def _in_work(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(work)


@pytest.fixture(scope="module")
def resumed(work: Path) -> Path:
    """Another copy of the interrupted run, resumed to its end by today's kit."""
    run_dir = work / "resumed" / INTERRUPTED
    shutil.copytree(OLD / INTERRUPTED, run_dir)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        run = fit(kit.parse_args(Config(), ["--resume", str(run_dir), "--quiet"]))
    assert run.status == "complete" and Path(run.run_dir).resolve() == run_dir.resolve()
    return run_dir


def test_the_ledger_lists_both_old_runs_with_their_scores(work: Path, capsys):
    assert runs_main(["runs", "--csv", "--all-fields"]) == 0
    rows = pd.read_csv(io.StringIO(capsys.readouterr().out)).set_index("name")
    assert sorted(rows.index) == [COMPLETE, INTERRUPTED]
    assert rows.loc[COMPLETE, "status"] == "complete"
    assert rows.loc[INTERRUPTED, "status"] == "interrupted"
    old = pd.read_csv(OLD / COMPLETE / "metrics.csv")
    assert rows.loc[COMPLETE, "val_macro_f1"] == pytest.approx(old["val_macro_f1"].max())
    assert rows.loc[COMPLETE, "model"] == rows.loc[INTERRUPTED, "model"] == "test_efficientnet"
    assert (rows.loc[COMPLETE, "epochs"], rows.loc[INTERRUPTED, "epochs"]) == (2, 3)


def test_predict_with_an_old_run_gives_its_own_test_probabilities(work: Path, capsys):
    out = work / "pred" / "old.csv"
    assert predict_main([f"runs/{COMPLETE}", "-o", str(out), "--device", "cpu"]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    expected = pd.read_csv(OLD / COMPLETE / "test_probs.csv", dtype={"image_id": str})
    got = pd.read_csv(probs_path(out), dtype={"image_id": str})
    assert got["image_id"].tolist() == expected["image_id"].tolist()
    # written on another CPU, maybe: the same arithmetic up to float rounding
    np.testing.assert_allclose(got[PROB_COLUMNS], expected[PROB_COLUMNS], atol=1e-5)


def test_resume_of_an_old_interrupted_run_trains_what_the_old_kit_trained(resumed: Path):
    run_dir = resumed
    assert read_status(run_dir)["status"] == "complete"
    got = pd.DataFrame(read_metrics(run_dir)).drop(columns=UNSTABLE)
    want = pd.read_csv(OLD / "uninterrupted_metrics.csv").drop(columns=UNSTABLE)
    old_first = pd.read_csv(OLD / INTERRUPTED / "metrics.csv").drop(columns=UNSTABLE)
    assert got["epoch"].tolist() == [1, 2, 3]
    pd.testing.assert_frame_equal(got.iloc[:1], old_first)  # the old epoch's row is kept
    pd.testing.assert_frame_equal(got, want, rtol=1e-5)  # epochs 2, 3 as if never stopped
    for name in ("val_probs.csv", "test_probs.csv", "submission.csv"):
        assert (run_dir / name).is_file(), name


def test_an_old_run_ensembles_with_a_run_resumed_today(work: Path, resumed: Path, capsys):
    out = work / "ensemble.csv"
    assert ensemble_main([f"runs/{COMPLETE}", str(resumed), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert COMPLETE in printed and INTERRUPTED in printed
    submission = pd.read_csv(out, dtype={"ImageID": str})
    test_ids = pd.read_csv(OLD / COMPLETE / "test_probs.csv", dtype={"image_id": str})
    assert sorted(submission["ImageID"]) == sorted(test_ids["image_id"])
    assert submission["ans"].between(0, 17).all()
