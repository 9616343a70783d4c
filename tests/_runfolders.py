"""Build run folders by hand, exactly as docs/run-folder.md describes, for the readers' tests.

Nothing here imports training: the ensembler, the ledger and the scorer are tested on
folders whose every number the test chose. File names, columns and the probability and
submission CSVs come from :mod:`kit.runfolder` (tests/test_run_folder_doc.py holds those to the
doc); the JSON records are written by hand, so the record readers are tested on files their
own writers did not make.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kit import runfolder
from kit.labels import NUM_CLASSES as N_CLASSES
from kit.runfolder import (
    CONFIG,
    ENV,
    KFOLD_PARENT_FILES,
    METRICS,
    PROB_COLUMNS,
    RUN_FILES,
    STATUS,
    SUBMISSION,
    SUBMISSION_COLUMNS,
    SUMMARY,
    TEST_KEYS,
    TEST_PROBS,
    VAL_PROBS,
)

__all__ = [
    "BASE_CONFIG",
    "KFOLD_PARENT_FILES",
    "N_CLASSES",
    "PROB_COLUMNS",
    "RUN_FILES",
    "Preds",
    "RunSpec",
    "metrics_row",
    "one_hot_probs",
    "probs_frame",
    "summary",
    "write_preds",
    "write_run",
    "write_submission",
]

BASE_CONFIG: dict[str, Any] = {
    "data_dir": None,
    "fold": 0,
    "n_folds": 5,
    "age_thresholds": [30, 60],
    "seed": 42,
    "model": "mobilenetv3_small_050",
    "head": "single",
    "image_size": [64, 48],
    "loss": "cross_entropy",
    "head_losses": {"mask": "cross_entropy", "gender": "cross_entropy", "age": "cross_entropy"},
    "loss_kwargs": {},
    "lr": 0.003,
    "epochs": 8,
    "batch_size": 32,
    "workers": 0,
    "device": "auto",
    "output_dir": "runs",
    "name": "baseline",
    "quiet": False,
    "resume": None,
}


@dataclass
class Preds:
    """Validation and test predictions of one run."""

    val_ids: list[str]
    val_labels: np.ndarray
    val_probs: np.ndarray
    test_ids: list[str] | None = None
    test_probs: np.ndarray | None = None
    person_ids: list[str] | None = None
    folds: list[int] | None = None


@dataclass
class RunSpec:
    """Everything a hand-made run folder holds; defaults make a complete run."""

    name: str = "baseline"
    stamp: str = "20240101-120000"
    config: dict[str, Any] = field(default_factory=dict)  # overrides of BASE_CONFIG
    status: str = "complete"
    updated: str = "2024-01-01T12:30:00+00:00"
    summary: dict[str, Any] | None = None  # None: no summary.json (run not finished)
    metrics: list[dict[str, float]] = field(default_factory=list)
    env: dict[str, Any] = field(default_factory=dict)
    preds: Preds | None = None


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _json(path: Path, obj: Any) -> None:
    _write(path, json.dumps(obj, indent=2) + "\n")


def probs_frame(ids: list[str], probs: np.ndarray, id_col: str = "image_id") -> pd.DataFrame:
    frame = pd.DataFrame(probs, columns=PROB_COLUMNS)
    frame.insert(0, id_col, ids)
    return frame


def write_preds(run: Path, preds: Preds) -> None:
    """val_probs.csv, and test_probs.csv + submission.csv when there are test predictions."""
    n = len(preds.val_ids)
    keys = pd.DataFrame(
        {
            "image_id": preds.val_ids,
            "person_id": preds.person_ids or [i.split("/")[0] for i in preds.val_ids],
            "label": np.asarray(preds.val_labels, dtype=int),
            "fold": preds.folds or [0] * n,
        }
    )
    runfolder.write_probs(run / VAL_PROBS, keys, np.asarray(preds.val_probs))
    if preds.test_ids is not None:
        test_keys = pd.DataFrame({TEST_KEYS[0]: preds.test_ids})
        runfolder.write_probs(run / TEST_PROBS, test_keys, np.asarray(preds.test_probs))
        write_submission(run / SUBMISSION, preds.test_ids, preds.test_probs.argmax(1))


def write_submission(path: Path, ids: list[str], labels: Any) -> Path:
    """A submission CSV (``ImageID,ans``) of ``labels``, rows in ``ids`` order."""
    ids_frame = pd.DataFrame({SUBMISSION_COLUMNS[0]: ids})
    return runfolder.write_submission(np.asarray(labels, dtype=int), ids_frame, path)


def write_run(root: Path, spec: RunSpec) -> Path:
    """A run folder ``root/<stamp>_<name>/`` holding the files the spec describes."""
    run = root / f"{spec.stamp}_{spec.name}"
    run.mkdir(parents=True)
    config = {**BASE_CONFIG, "name": spec.name, **spec.config}
    _json(run / CONFIG, config)
    env = {
        "git_commit": "0123456789abcdef0123456789abcdef01234567",
        "git_dirty": False,
        "user": "alice",
        "host": "box",
        "python": "3.11.7",
        "versions": {"torch": "2.3.0", "timm": "1.0.0"},
        "device": "cpu",
        "start_time": f"{spec.stamp[:4]}-{spec.stamp[4:6]}-{spec.stamp[6:8]}T12:00:00+00:00",
        "argv": ["recipes/baseline.py"],
        **spec.env,
    }
    _json(run / ENV, env)
    epoch = len(spec.metrics)
    _json(run / STATUS, {"status": spec.status, "epoch": epoch, "updated": spec.updated})
    if spec.metrics:
        pd.DataFrame(spec.metrics).to_csv(run / METRICS, index=False)
    if spec.preds is not None:
        write_preds(run, spec.preds)
    if spec.summary is not None:
        summary = {"name": spec.name, "status": spec.status, "n_val": None, **spec.summary}
        if spec.preds is not None:
            summary["n_val"] = len(spec.preds.val_ids)
        _json(run / SUMMARY, summary)
    return run


def metrics_row(epoch: int, f1: float, **heads: float) -> dict[str, float]:
    """One metrics.csv row with the contract's columns."""
    return {
        "epoch": epoch,
        "train_loss": 1.0 / epoch,
        "val_loss": 1.1 / epoch,
        "val_macro_f1": f1,
        "val_accuracy": heads.get("acc", f1 + 0.1),
        "val_f1_mask": heads.get("mask", 0.9),
        "val_f1_gender": heads.get("gender", 0.8),
        "val_f1_age": heads.get("age", 0.6),
        "lr": 0.001,
        "seconds": 10.0,
    }


def summary(f1: float, best_epoch: int = 3, **extra: Any) -> dict[str, Any]:
    """A summary.json body with the contract's fields."""
    return {
        "best_epoch": best_epoch,
        "epochs_run": best_epoch + 1,
        "val_macro_f1": f1,
        "val_accuracy": extra.pop("acc", f1 + 0.1),
        "val_f1_mask": extra.pop("mask", 0.9),
        "val_f1_gender": extra.pop("gender", 0.8),
        "val_f1_age": extra.pop("age", 0.6),
        "confusion": [[0] * N_CLASSES for _ in range(N_CLASSES)],
        "submission_weights": "best.pt",
        "seconds": 100.0,
        **extra,
    }


def one_hot_probs(labels: Any, confidence: float = 0.9) -> np.ndarray:
    """Rows putting ``confidence`` on ``labels`` and the rest evenly on the other classes."""
    labels = np.asarray(labels, dtype=int)
    p = np.full((len(labels), N_CLASSES), (1 - confidence) / (N_CLASSES - 1))
    p[np.arange(len(labels)), labels] = confidence
    return p
