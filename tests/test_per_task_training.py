"""Per-task runs trained for real: a mask, a gender and an age head on the fixture, their run
folders (task probabilities, task scores, no submission) and their merge by the ensembler."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import accuracy_score, f1_score

import kit
from kit.config import Config
from kit.inference import predict
from kit.labels import TASK_SIZES, decode, joint_from_heads
from kit.losses import build_criterion
from kit.models import OUTPUT_KINDS, head_task, to_probs
from kit.runfolder import RUN_FILES, SUBMISSION
from kit.runs import load
from kit.splits import load_splits
from kit.train import fit

TASKS = ("mask", "gender", "age")


def _task_truth(labels: np.ndarray, task: str) -> np.ndarray:
    """The task value of 18-way class ids, by the class formula (mask*6 + gender*3 + age)."""
    return {"mask": labels // 6, "gender": (labels % 6) // 3, "age": labels % 3}[task]


def _cols(task: str) -> list[str]:
    return [f"{task}{v}" for v in range(TASK_SIZES[task])]


@pytest.fixture(scope="module")
def task_runs(tiny_base: Config, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One smoke-sized run per task, same seed (same validation people)."""
    out = tmp_path_factory.mktemp("per_task") / "runs"
    cfg = tiny_base.replace(output_dir=str(out))
    return {t: fit(cfg.replace(name=t, head=t)).run_dir for t in TASKS}


def test_task_heads_are_registered_with_their_kinds():
    for i, task in enumerate(TASKS):
        assert head_task(task) == task and OUTPUT_KINDS[task].width == TASK_SIZES[task]
        assert OUTPUT_KINDS[task].target(17) == decode(17)[i]
    assert head_task("single") is None and head_task("multi") is None
    logits = torch.randn(4, 2)
    assert torch.allclose(to_probs(logits, "gender"), torch.softmax(logits, 1))


def test_task_loss_is_cross_entropy_over_the_task_values():
    labels = np.array([0, 3, 3, 3, 17, 9])  # genders 0, 1, 1, 1, 1, 1
    logits, target = torch.randn(6, 2), torch.tensor([0, 1, 1, 1, 1, 1])
    plain = build_criterion(Config(head="gender"), labels)
    assert torch.allclose(plain(logits, target), F.cross_entropy(logits, target))
    cfg = Config(head="gender", loss_kwargs={"class_weights": "balanced"})
    weighted = build_criterion(cfg, labels)
    want = F.cross_entropy(logits, target, weight=torch.tensor([6 / (2 * 1), 6 / (2 * 5)]))
    assert torch.allclose(weighted(logits, target), want, atol=1e-6)


@pytest.mark.slow
def test_a_task_run_writes_task_probabilities_and_task_scores(task_runs: dict[str, Path]):
    for task, run in task_runs.items():
        val = pd.read_csv(run / "val_probs.csv", dtype={"image_id": str, "person_id": str})
        assert list(val.columns) == ["image_id", "person_id", "label", "fold", *_cols(task)]
        test = pd.read_csv(run / "test_probs.csv", dtype={"image_id": str})
        assert list(test.columns) == ["image_id", *_cols(task)]
        assert not (run / "submission.csv").exists()  # a task predicts no class
        missing = [f for f in RUN_FILES if f != SUBMISSION and not (run / f).is_file()]
        assert not missing, f"{task} run lacks {missing}"
        summary = json.loads((run / "summary.json").read_text())
        truth = _task_truth(val["label"].to_numpy(), task)
        pred = val[_cols(task)].to_numpy().argmax(1)
        want = f1_score(
            truth, pred, labels=range(TASK_SIZES[task]), average="macro", zero_division=0
        )
        assert summary["task"] == task and summary["val_macro_f1"] is None
        assert summary[f"val_f1_{task}"] == pytest.approx(want)
        assert summary["val_accuracy"] == pytest.approx(accuracy_score(truth, pred))
        assert all(summary[f"val_f1_{t}"] is None for t in TASKS if t != task)
        assert np.array(summary["confusion"]).shape == (TASK_SIZES[task],) * 2
        assert kit.read_run(run).best_score == pytest.approx(want)
        # best.pt is the epoch whose task F1 was highest
        metrics = pd.read_csv(run / "metrics.csv")
        assert metrics["val_macro_f1"].isna().all()
        best = metrics[f"val_f1_{task}"].idxmax()
        assert summary["best_epoch"] == int(metrics["epoch"][best])


@pytest.mark.slow
def test_predict_gives_the_task_probabilities_of_best_pt(task_runs, tiny_base):
    run = task_runs["age"]
    splits = load_splits(tiny_base)
    probs = predict(run, splits.val)
    assert probs.shape == (len(splits.val), 3)
    saved = pd.read_csv(run / "val_probs.csv")[_cols("age")].to_numpy()
    np.testing.assert_allclose(probs, saved, atol=1e-6)


@pytest.mark.slow
def test_merged_task_runs_equal_joint_from_heads_with_an_oof_score(task_runs):
    runs = [task_runs[t] for t in ("age", "mask", "gender")]  # any order
    result = kit.ensemble_runs(runs)
    tables = {
        t: (
            pd.read_csv(task_runs[t] / "val_probs.csv"),
            pd.read_csv(task_runs[t] / "test_probs.csv"),
        )
        for t in TASKS
    }
    for side, got in ((0, result.val_probs), (1, result.test_probs)):
        want = joint_from_heads(*(tables[t][side][_cols(t)].to_numpy() for t in TASKS))
        np.testing.assert_allclose(got, want, rtol=1e-6)
    truth = tables["mask"][0]["label"].to_numpy()
    want_f1 = f1_score(
        truth, result.val_probs.argmax(1), labels=range(18), average="macro", zero_division=0
    )
    assert result.val_macro_f1 == pytest.approx(want_f1)  # same validation people: scored


@pytest.mark.slow
def test_the_ledger_leaves_the_18_way_score_empty_and_fills_the_task_column(task_runs):
    ledger = load(task_runs["mask"].parent).set_index("cfg.head")
    assert ledger[["val_macro_f1"]].isna().all().all()
    for task in TASKS:
        others = [f"val_f1_{t}" for t in TASKS if t != task]
        assert ledger.loc[task, f"val_f1_{task}"] > 0 and ledger.loc[task, others].isna().all()


@pytest.mark.slow
def test_a_task_k_fold_parent_holds_out_of_fold_task_probabilities(tiny_cfg: Config):
    parent = fit(tiny_cfg.replace(name="g", head="gender", folds="all", n_folds=2)).run_dir
    oof = pd.read_csv(parent / "val_probs.csv")
    assert list(oof.columns)[4:] == _cols("gender") and sorted(oof["fold"].unique()) == [0, 1]
    assert not (parent / "submission.csv").exists()
    summary = json.loads((parent / "summary.json").read_text())
    truth = _task_truth(oof["label"].to_numpy(), "gender")
    want = f1_score(truth, oof[_cols("gender")].to_numpy().argmax(1), average="macro")
    assert summary["task"] == "gender" and summary["val_f1_gender"] == pytest.approx(want)
    folds = [pd.read_csv(parent / f["run_dir"] / "test_probs.csv") for f in summary["folds"]]
    mean = np.mean([f[_cols("gender")].to_numpy() for f in folds], axis=0)
    test = pd.read_csv(parent / "test_probs.csv")
    np.testing.assert_allclose(test[_cols("gender")].to_numpy(), mean, atol=1e-7)
