"""K-fold training: out-of-fold alignment, CV scores, fold-averaged test, subsets, resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

import kit.runs
import kit.splits as kit_splits
import kit.train.loop as loop
from kit.config import Config, parse_folds
from kit.data import read_eval, read_train
from kit.ensemble import ensemble
from kit.metrics import macro_f1
from kit.recipe import parse_args
from kit.splits import person_folds
from kit.train import fit
from tests._triggers import assert_documented

PROBS = [f"p{k}" for k in range(18)]
N_FOLDS = 3


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def _csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"image_id": str, "person_id": str}, keep_default_na=False)


def _fold_dirs(parent: Path) -> dict[int, Path]:
    return {f["fold"]: parent / f["run_dir"] for f in _json(parent / "summary.json")["folds"]}


@pytest.fixture(scope="module")
def all_folds(tiny_base, tmp_path_factory):
    """Every fold trained once; the training frame each fold's loop saw is recorded."""
    seen: dict[int, tuple[set[str], set[str]]] = {}
    real = kit_splits.load_splits

    def recording(cfg):
        data = real(cfg)
        if cfg.output_dir != out:  # a fold's own run, not the parent's look at the split
            seen[cfg.fold] = (set(data.train["image_id"]), set(data.val["image_id"]))
        return data

    out = str(tmp_path_factory.mktemp("kfold"))
    cfg = tiny_base.replace(output_dir=out, max_steps_per_epoch=2, n_folds=N_FOLDS, folds="all")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kit_splits, "load_splits", recording)
        run = fit(cfg)
    return cfg, run, seen


def test_every_training_image_is_predicted_once_by_the_fold_that_did_not_train_on_it(
    all_folds, tiny_data
):
    cfg, run, seen = all_folds
    parent = run.run_dir
    assert run.kfold and parent.name.endswith("_t_kfold")
    train = read_train(tiny_data)
    expected = pd.Series(person_folds(train, N_FOLDS, cfg.seed), index=train["image_id"])
    oof = _csv(parent / "val_probs.csv")
    assert list(oof.columns) == ["image_id", "person_id", "label", "fold", *PROBS]
    assert not oof["image_id"].duplicated().any()
    assert sorted(oof["image_id"]) == sorted(train["image_id"])
    np.testing.assert_array_equal(oof["fold"], expected[oof["image_id"]].to_numpy())
    np.testing.assert_array_equal(
        oof["label"], train.set_index("image_id").loc[oof["image_id"], "label"]
    )
    dirs = _fold_dirs(parent)
    assert sorted(dirs) == list(range(N_FOLDS)) == sorted(seen)
    for k, fold_dir in dirs.items():
        assert fold_dir.parent == parent and fold_dir.name.endswith(f"_t_fold{k}")
        assert _json(fold_dir / "config.json")["fold"] == k
        assert _json(fold_dir / "status.json")["status"] == "complete"
        rows = oof[oof["fold"] == k].reset_index(drop=True)
        fold_val = _csv(fold_dir / "val_probs.csv")
        pd.testing.assert_frame_equal(rows, fold_val)  # the fold model's own predictions
        trained_on, validated_on = seen[k]
        assert validated_on == set(rows["image_id"])
        assert not trained_on & set(rows["image_id"])
        assert trained_on | validated_on == set(train["image_id"])


def test_cv_scores_are_those_of_the_whole_out_of_fold_table(all_folds):
    _, run, _ = all_folds
    parent = run.run_dir
    oof = _csv(parent / "val_probs.csv")
    y, pred = oof["label"].to_numpy(), oof[PROBS].to_numpy().argmax(1)
    summary = _json(parent / "summary.json")
    sk_f1 = f1_score(y, pred, labels=range(18), average="macro", zero_division=0)
    assert summary["val_macro_f1"] == pytest.approx(sk_f1) == pytest.approx(macro_f1(y, pred))
    assert summary["val_accuracy"] == pytest.approx(accuracy_score(y, pred))
    np.testing.assert_array_equal(summary["confusion"], confusion_matrix(y, pred, labels=range(18)))
    assert summary["n_val"] == len(oof) and summary["status"] == "complete"
    assert summary["n_folds"] == N_FOLDS and summary["cv_note"] is None
    for entry, (k, fold_dir) in zip(
        summary["folds"], sorted(_fold_dirs(parent).items()), strict=True
    ):
        assert entry["fold"] == k
        assert entry["val_macro_f1"] == _json(fold_dir / "summary.json")["val_macro_f1"]
    assert run.best_score == summary["val_macro_f1"] and len(run.folds) == N_FOLDS
    assert _json(parent / "status.json")["status"] == "complete"
    assert _json(parent / "config.json")["folds"] == "all"
    assert "git_commit" in _json(parent / "env.json")


def test_test_probabilities_are_the_mean_of_the_fold_models(all_folds, tiny_data):
    _, run, _ = all_folds
    parent = run.run_dir
    folds = [_csv(d / "test_probs.csv") for d in _fold_dirs(parent).values()]
    mean = np.mean([f[PROBS].to_numpy() for f in folds], axis=0)
    test = _csv(parent / "test_probs.csv")
    info = read_eval(tiny_data)
    assert test["image_id"].tolist() == info["image_id"].tolist()
    np.testing.assert_allclose(test[PROBS].to_numpy(), mean, atol=1e-7)
    sub = pd.read_csv(parent / "submission.csv", dtype={"ImageID": str})
    assert sub["ImageID"].tolist() == info["ImageID"].tolist()
    np.testing.assert_array_equal(sub["ans"], mean.argmax(1))


def test_the_ensembler_and_the_ledger_take_the_parent(all_folds):
    cfg, run, _ = all_folds
    parent = run.run_dir
    alone = ensemble([parent], method="soft")
    assert alone.val_macro_f1 == pytest.approx(run.best_score)
    pair = ensemble([parent, parent], method="soft", weights="auto")
    assert pair.val_macro_f1 == pytest.approx(run.best_score)
    table = kit.runs.load(cfg.output_dir)
    top = table[table["name"] == parent.name].iloc[0]
    assert bool(top["kfold"]) and top["status"] == "complete"
    children = table[table["parent"] == parent.name]
    assert sorted(children["name"]) == sorted(d.name for d in _fold_dirs(parent).values())


def test_a_subset_of_folds_resumes_fold_by_fold(all_folds, tiny_data, tmp_path, monkeypatch):
    cfg, reference, _ = all_folds
    real = loop.train_one_epoch

    def stop_fold_2_in_epoch_2(parts, loader, criterion, c, epoch, *rest):
        if c.fold == 2 and epoch == 2:
            raise KeyboardInterrupt
        return real(parts, loader, criterion, c, epoch, *rest)

    monkeypatch.setattr(loop, "train_one_epoch", stop_fold_2_in_epoch_2)
    with pytest.raises(SystemExit):
        fit(cfg.replace(output_dir=str(tmp_path), folds="0,2"))
    (parent,) = tmp_path.iterdir()
    status = _json(parent / "status.json")
    assert status["status"] == "interrupted" and status["epoch"] == 1
    assert not (parent / "summary.json").exists()
    by_fold = {_json(d / "config.json")["fold"]: d for d in parent.iterdir() if d.is_dir()}
    assert sorted(by_fold) == [0, 2]
    kept = {p: p.stat().st_mtime_ns for p in by_fold[0].iterdir()}

    monkeypatch.setattr(loop, "train_one_epoch", real)
    run = fit(parse_args(Config(), ["--resume", str(parent)]))  # the command line's way
    assert run.run_dir == parent and sorted(d for d in parent.iterdir() if d.is_dir()) == sorted(
        by_fold.values()
    )
    assert {p: p.stat().st_mtime_ns for p in by_fold[0].iterdir()} == kept  # fold 0 untouched
    assert "resumed" not in _json(by_fold[0] / "env.json")
    assert len(_json(by_fold[2] / "env.json")["resumed"]) == 1  # fold 2 went on from epoch 1
    # Same seed, same folds: each fold ends exactly as in the uninterrupted K-fold.
    ref = _csv(reference.run_dir / "val_probs.csv")
    oof = _csv(parent / "val_probs.csv")
    pd.testing.assert_frame_equal(oof, ref[ref["fold"].isin([0, 2])].reset_index(drop=True))
    summary = _json(parent / "summary.json")
    assert [f["fold"] for f in summary["folds"]] == [0, 2] and "[0, 2] of 3" in summary["cv_note"]
    assert summary["n_val"] == len(oof) and summary["status"] == "complete"
    assert _json(parent / "status.json")["status"] == "complete"

    # Resuming a complete parent trains nothing and rewrites the same parent files.
    before = {d: (d / "summary.json").stat().st_mtime_ns for d in by_fold.values()}
    again = fit(cfg.replace(output_dir=str(tmp_path), folds="0,2", resume=str(parent)))
    assert {d: (d / "summary.json").stat().st_mtime_ns for d in by_fold.values()} == before
    assert again.best_score == summary["val_macro_f1"]


def test_resuming_with_a_different_split_is_refused(all_folds):
    cfg, run, _ = all_folds
    with pytest.raises(ValueError, match="seed: 42 -> 7"):
        fit(cfg.replace(resume=str(run.run_dir), seed=7))
    with pytest.raises(FileNotFoundError, match="no config.json") as err:
        fit(cfg.replace(resume=str(run.run_dir / "nothing-here")))
    assert_documented("kfold-resume-missing", str(err.value))
    with pytest.raises(ValueError, match="it is a single run") as err:
        fit(cfg.replace(resume=str(run.folds[0].run_dir)))
    assert_documented("kfold-resume-single", str(err.value))


def test_resuming_a_kfold_parent_trained_with_another_seed_is_refused_naming_the_split(
    tiny_base, tmp_path
):
    """A K-fold parent folder (config.json, last.pt) of seed 1, resumed with seed 42."""
    parent = tmp_path / "old-run"
    parent.mkdir()
    cfg = tiny_base.replace(output_dir=str(tmp_path / "runs"), folds="all")
    old = cfg.replace(seed=1).to_dict()
    (parent / "config.json").write_text(json.dumps(old))
    (parent / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"with changed seed: 1 -> 42: these decide") as err:
        fit(cfg.replace(resume=str(parent)))
    assert_documented("kfold-resume-changed", str(err.value))
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("3", "there is no fold 3 with n_folds = 3"),
        ("0,x", "'x' is not a fold index"),
        ("1,,2", "'' is not a fold index"),
        ("-1", "'-1' is not a fold index"),
        ("0,2,0", "fold 0 is listed twice"),
        ("1,1", "fold 1 is listed twice"),
        ("al", "'al' is not a fold index; expected all or a comma list"),
    ],
)
def test_bad_folds_values_name_the_field_and_what_is_expected(flag, message, tmp_path):
    cfg = parse_args(Config(n_folds=N_FOLDS, output_dir=str(tmp_path)), ["--folds", flag])
    assert cfg.folds == flag
    with pytest.raises(ValueError, match=f"config field 'folds'.*{message}") as err:
        cfg.validate()
    if flag == "0,x":  # the page's examples
        assert_documented("folds-not-index", str(err.value))
    if flag == "1,1":
        assert_documented("folds-twice", str(err.value))
    with pytest.raises(ValueError, match=message):
        fit(cfg)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # nothing written


def test_folds_flags_parse_and_fold_with_folds_is_refused():
    base = Config(n_folds=N_FOLDS)
    assert parse_args(base, ["--folds", "all"]).validate().folds == "all"
    assert parse_args(base, ["--folds", "2,0"]).validate().folds == "2,0"
    assert parse_args(base.replace(folds="all"), ["--folds", "none"]).folds is None
    with pytest.raises(ValueError, match="'fold' .* and 'folds' .* are both set") as err:
        base.replace(fold=0, folds="all").validate()
    assert_documented("folds-and-fold", str(err.value))


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 8).flatmap(lambda n: st.tuples(st.just(n), st.permutations(range(n)))))
def test_a_comma_list_parses_to_its_sorted_folds(case):
    n, order = case
    chosen = order[: 1 + len(order) // 2]
    assert parse_folds(", ".join(map(str, chosen)), n) == sorted(chosen)
    assert parse_folds(" ALL ", n) == list(range(n))
