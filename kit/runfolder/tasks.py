"""Probability files of a per-task run: one task's probabilities instead of the 18 classes.

A run whose head predicts one task only (mask, gender or age) knows nothing of the other two,
so it writes that task's columns, never 18-way rows made up by spreading them evenly:

- ``val_probs.csv``: ``image_id,person_id,label,fold,<task>0,...`` (``label`` stays the
  18-way class id: the truth of every task);
- ``test_probs.csv``: ``image_id,<task>0,...``, info.csv order.

Task columns: ``mask0..mask2`` (wear, incorrect, not wear), ``gender0..gender1`` (male,
female), ``age0..age2`` (<30, 30-59, >=60), in :mod:`kit.labels` order. The ensembler merges a
mask, a gender and an age run into 18 classes with :func:`kit.labels.joint_from_heads`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from kit import io
from kit.labels import HEAD_SIZES
from kit.runfolder.files import write_probs
from kit.runfolder.names import PROB_COLUMNS, TEST_PROBS, VAL_PROBS
from kit.runfolder.predictions import Split, checked_class_ids, checked_probs, read_checked_csv

__all__ = [
    "TASK_COLUMNS",
    "prob_columns",
    "probs_task",
    "read_task_predictions",
    "read_task_test_probs",
    "read_task_val_probs",
    "write_run_probs",
    "write_task_probs",
]

#: task -> its probability columns in a per-task run's val_probs.csv / test_probs.csv.
TASK_COLUMNS: dict[str, list[str]] = {
    task: [f"{task}{v}" for v in range(k)] for task, k in HEAD_SIZES.items()
}


def probs_task(path: str | Path) -> str | None:
    """The task whose columns the probability file ``path`` holds, or None for 18-way rows
    (or a file that is neither: the 18-way reader then names what is missing)."""
    try:
        header = pd.read_csv(**io.csv_source(path), nrows=0).columns
    except (OSError, ValueError):
        return None
    if all(c in header for c in PROB_COLUMNS):
        return None
    found = [t for t, cols in TASK_COLUMNS.items() if all(c in header for c in cols)]
    return found[0] if len(found) == 1 else None


def read_task_val_probs(path: str | Path, task: str) -> Split:
    """A per-task run's validation rows: ``probs`` (n, classes of ``task``), ``labels`` the
    predicted value of the task, ``truth`` the 18-way class."""
    path = Path(path)
    cols = TASK_COLUMNS[task]
    df = read_checked_csv(path, ["image_id", "person_id", "label", "fold", *cols], ["image_id"])
    probs = checked_probs(path, df, cols)
    ids = df["image_id"].to_numpy(object)
    return Split(ids, probs.argmax(axis=1), probs, checked_class_ids(path, df, "label"), path)


def read_task_test_probs(path: str | Path, task: str) -> Split:
    """A per-task run's test rows: ``image_id`` and the task's columns, info.csv order."""
    path = Path(path)
    cols = TASK_COLUMNS[task]
    df = read_checked_csv(path, ["image_id", *cols], ["image_id"])
    probs = checked_probs(path, df, cols)
    return Split(df["image_id"].to_numpy(object), probs.argmax(axis=1), probs, None, path)


def read_task_predictions(run_dir: str | Path) -> tuple[str, Split | None, Split | None] | None:
    """``(task, validation split, test split)`` of a per-task run folder (None for a file it
    lacks), or None when ``run_dir`` is not a per-task run."""
    run_dir = Path(run_dir)
    val_path, test_path = run_dir / VAL_PROBS, run_dir / TEST_PROBS
    task = probs_task(val_path if val_path.exists() else test_path)
    if task is None:
        return None
    val = read_task_val_probs(val_path, task) if val_path.exists() else None
    return task, val, read_task_test_probs(test_path, task) if test_path.exists() else None


def write_task_probs(path: Path, keys: pd.DataFrame, probs: np.ndarray, task: str) -> None:
    """``keys`` columns then ``task``'s probability columns, as CSV (atomically)."""
    cols = TASK_COLUMNS[task]
    if probs.ndim != 2 or probs.shape[1] != len(cols):  # a programming error, not user input
        raise ValueError(
            f"{task} probabilities must have shape (n, {len(cols)}), got {probs.shape}"
        )
    table = pd.concat([keys.reset_index(drop=True), pd.DataFrame(probs, columns=cols)], axis=1)
    io.write_text(path, table.to_csv(index=False, float_format="%.8g", lineterminator="\n"))


def write_run_probs(path: Path, keys: pd.DataFrame, probs: np.ndarray, task: str | None) -> None:
    """A run's probabilities: ``p0..p17`` (:func:`write_probs`), or ``task``'s columns."""
    if task is None:
        write_probs(path, keys, probs)
    else:
        write_task_probs(path, keys, probs, task)


def prob_columns(task: str | None) -> list[str]:
    """The probability columns of a run's files: ``p0..p17``, or ``task``'s."""
    return PROB_COLUMNS if task is None else TASK_COLUMNS[task]
