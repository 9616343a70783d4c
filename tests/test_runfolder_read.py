"""kit.runfolder's readers on hand-made run folders: records, epochs, folds, predictions, Run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kit import runfolder
from kit.runfolder import (
    fold_run_dirs,
    is_run_folder,
    read_config,
    read_env,
    read_metrics,
    read_predictions,
    read_run,
    read_status,
    read_summary,
    read_val_keys,
    write_summary,
)
from tests._runfolders import Preds, RunSpec, metrics_row, one_hot_probs, summary, write_run
from tests._triggers import assert_documented

READERS = {
    "config.json": read_config,
    "env.json": read_env,
    "status.json": read_status,
    "summary.json": read_summary,
}
VAL_IDS = [f"{i:06d}_female_Asian_45/mask1.jpg" for i in range(6)]
TEST_IDS = [f"{i:040x}.jpg" for i in range(4)]


def _preds(test: bool = True) -> Preds:
    labels = np.arange(6) % 18
    return Preds(
        VAL_IDS,
        labels,
        one_hot_probs(labels),
        TEST_IDS if test else None,
        one_hot_probs([1, 2, 3, 4]) if test else None,
    )


@pytest.mark.parametrize("name", READERS)
def test_records_read_what_was_written_by_hand(tmp_path, name):
    (tmp_path / name).write_text(json.dumps({"status": "running", "x": [1, 2]}))
    # config.json: a field the file predates reads as what runs of its time trained with
    predates = {"amp_dtype": "float16"} if name == "config.json" else {}
    assert READERS[name](tmp_path) == {"status": "running", "x": [1, 2], **predates}


@pytest.mark.parametrize("name", READERS)
def test_a_missing_record_is_empty_unless_required(tmp_path, name):
    assert READERS[name](tmp_path) == {}
    with pytest.raises(FileNotFoundError, match=rf"{name}: file not found"):
        READERS[name](tmp_path, missing_ok=False)


@pytest.mark.parametrize("name", READERS)
def test_a_broken_record_names_its_file(tmp_path, name):
    (tmp_path / name).write_text('{"status": ')
    with pytest.raises(ValueError, match=rf"{name}: not valid JSON"):
        READERS[name](tmp_path)
    (tmp_path / name).write_text("[1, 2]")
    with pytest.raises(ValueError, match=rf"{name}: found a JSON list; expected an object"):
        READERS[name](tmp_path)


def test_read_metrics_rows_empty_and_broken(tmp_path):
    assert read_metrics(tmp_path) == []
    (tmp_path / "metrics.csv").write_text("")
    assert read_metrics(tmp_path) == []
    run = write_run(tmp_path, RunSpec(metrics=[metrics_row(1, 0.5), metrics_row(2, 0.6)]))
    rows = read_metrics(run)
    assert [(r["epoch"], r["val_macro_f1"]) for r in rows] == [(1, 0.5), (2, 0.6)]
    (run / "metrics.csv").write_text('epoch,val_macro_f1\n1,"0.5\n')
    with pytest.raises(ValueError, match=r"metrics\.csv: not a readable CSV"):
        read_metrics(run)


def test_is_run_folder(tmp_path):
    assert not is_run_folder(tmp_path)  # empty
    assert not is_run_folder(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    assert not is_run_folder(tmp_path) and not is_run_folder(tmp_path / "notes.txt")
    for name in ("config.json", "status.json", "summary.json", "metrics.csv"):
        one = tmp_path / name.split(".")[0]
        one.mkdir()
        (one / name).write_text("{}")
        assert is_run_folder(one), name


def test_fold_run_dirs_are_relative_to_the_parent(tmp_path):
    elsewhere = tmp_path / "other" / "fold1"
    body = {"folds": [{"fold": 0, "run_dir": "cv_fold0"}, {"fold": 1, "run_dir": str(elsewhere)}]}
    (tmp_path / "summary.json").write_text(json.dumps(body))
    assert fold_run_dirs(tmp_path) == [tmp_path / "cv_fold0", elsewhere]
    assert fold_run_dirs(tmp_path, {"folds": None}) == []
    assert fold_run_dirs(tmp_path / "missing") == []  # no summary.json: not a K-fold parent


def test_read_predictions_of_a_run(tmp_path):
    run = write_run(tmp_path, RunSpec(summary=summary(0.7), preds=_preds()))
    val, test = read_predictions(run)
    assert val.ids.tolist() == VAL_IDS and val.truth.tolist() == list(range(6))
    assert test.ids.tolist() == TEST_IDS and test.labels.tolist() == [1, 2, 3, 4]
    (run / "test_probs.csv").unlink()
    assert read_predictions(run)[1] is None


def test_validation_keys_of_a_row_the_file_lacks_are_refused_naming_it(tmp_path):
    run = write_run(tmp_path, RunSpec(summary=summary(0.7), preds=_preds()))
    keys = read_val_keys(run)
    assert keys.take(np.array(VAL_IDS[::-1], dtype=object)).ids.tolist() == VAL_IDS[::-1]
    with pytest.raises(ValueError, match="'nope/img0' has no person / fold") as err:
        keys.take(np.array(["nope/img0"], dtype=object))
    assert_documented("val-keys-missing", str(err.value))


def test_read_predictions_refuses_rows_the_summary_does_not_count(tmp_path):
    run = write_run(tmp_path, RunSpec(summary=summary(0.7), preds=_preds()))
    summary_path = run / "summary.json"
    body = json.loads(summary_path.read_text())
    summary_path.write_text(json.dumps({**body, "n_val": 5}))
    with pytest.raises(ValueError, match=r"val_probs\.csv: 6 rows but .*n_val = 5"):
        read_predictions(run)


def test_read_predictions_of_an_unfinished_run_says_its_status(tmp_path):
    run = write_run(tmp_path, RunSpec(status="interrupted"))
    with pytest.raises(FileNotFoundError, match=r"no val_probs\.csv .*run status: interrupted"):
        read_predictions(run)
    (run / "status.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"run status: no status\.json"):
        read_predictions(run)
    with pytest.raises(FileNotFoundError, match=r"run status: running") as err:
        read_predictions(write_run(tmp_path / "b", RunSpec(status="running")))
    assert_documented("member-unfinished", str(err.value))


def test_read_run_of_a_kfold_parent(tmp_path):
    parent = write_run(tmp_path, RunSpec("cv_kfold", config={"fold": None}, summary=summary(0.7)))
    for k, f1 in enumerate((0.6, 0.8)):
        write_run(parent, RunSpec(f"cv_fold{k}", config={"fold": k}, summary=summary(f1, 2 + k)))
    body = json.loads((parent / "summary.json").read_text())
    names = sorted(p.name for p in parent.iterdir() if p.is_dir())
    body.update(best_epoch=None, folds=[{"fold": k, "run_dir": n} for k, n in enumerate(names)])
    (parent / "summary.json").write_text(json.dumps(body))
    run = read_run(parent)
    assert run.kfold and (run.best_score, run.best_epoch, run.config.fold) == (0.7, 0, None)
    assert [(f.best_score, f.best_epoch, f.config.fold) for f in run.folds] == [
        (0.6, 2, 0),
        (0.8, 3, 1),
    ]
    assert not run.folds[0].kfold
    with pytest.raises(FileNotFoundError, match=r"summary\.json: file not found"):
        read_run(tmp_path)


def test_write_summary_refuses_a_summary_without_the_contract_keys(tmp_path):
    body = {"name": "x", "status": "complete", "n_val": 3, **summary(0.5)}
    write_summary(tmp_path, body)
    assert read_summary(tmp_path) == body
    del body["n_val"]
    with pytest.raises(ValueError, match=r"summary\.json: summary lacks \['n_val'\]"):
        write_summary(tmp_path / "other", body)
    assert not (tmp_path / "other").exists()


def test_the_scores_the_ledger_compares_are_in_both_summary_and_metrics():
    assert set(runfolder.SCORE_COLUMNS) <= set(runfolder.SUMMARY_KEYS)
    assert set(runfolder.SCORE_COLUMNS) <= set(runfolder.EPOCH_COLUMNS)
    assert runfolder.SCORE_COLUMNS[0] == "val_macro_f1"  # the ledger's headline score
