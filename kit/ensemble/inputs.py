"""Ensemble members (run folders, K-fold parents, submission CSVs) and aligning their rows.

A run folder (or K-fold parent) gives ``val_probs.csv`` and, when it has one,
``test_probs.csv``; a submission CSV (``ImageID,ans``) gives test labels only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kit.io import read_json
from kit.runfolder import (
    PROB_COLUMNS,
    Split,
    probs_task,
    read_submission,
    read_task_test_probs,
    read_task_val_probs,
    read_test_probs,
    read_val_probs,
)

__all__ = [
    "PROB_COLUMNS",
    "Member",
    "Split",
    "align",
    "load_member",
    "read_submission",
    "read_test_probs",
    "read_val_probs",
]


@dataclass
class Member:
    """An ensemble member: a run folder or a submission CSV."""

    name: str
    path: Path
    #: "run", "submission", the task of a per-task run ("mask", "gender", "age"), or
    #: "per-task" (mask, gender and age runs merged by kit.ensemble.tasks)
    kind: str
    val: Split | None
    test: Split | None

    @property
    def has_probs(self) -> bool:
        """18-way probabilities (not a submission CSV, not a per-task run)."""
        return self.kind in ("run", "per-task")


def _load_run(path: Path) -> Member:
    val_path, test_path = path / "val_probs.csv", path / "test_probs.csv"
    if not val_path.exists() and not test_path.exists():
        status = path / "status.json"
        state = read_json(status).get("status", "?") if status.exists() else "no status.json"
        raise FileNotFoundError(
            f"{path}: no val_probs.csv or test_probs.csv (run status: {state}); a run writes "
            "them when it finishes. Expected a finished run folder or a submission CSV."
        )
    task = probs_task(val_path if val_path.exists() else test_path)
    if task is not None:  # a per-task run: merged into 18 classes by kit.ensemble.tasks
        val = read_task_val_probs(val_path, task) if val_path.exists() else None
        test = read_task_test_probs(test_path, task) if test_path.exists() else None
        return Member(path.name, path, task, val, test)
    val = read_val_probs(val_path) if val_path.exists() else None
    summary = path / "summary.json"
    if val is not None and summary.exists():
        n_val = read_json(summary).get("n_val")
        if n_val is not None and int(n_val) != len(val.ids):
            raise ValueError(
                f"{val_path}: {len(val.ids)} rows but {summary} says n_val = {n_val}; "
                "expected the same (was the file truncated or replaced?)"
            )
    test = read_test_probs(test_path) if test_path.exists() else None
    return Member(path.name, path, "run", val, test)


def load_member(path: str | Path) -> Member:
    """A member from a run folder, a K-fold parent folder or a submission CSV."""
    path = Path(path)
    if path.is_dir():
        return _load_run(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; expected a run folder or a submission CSV")
    return Member(
        f"{path.parent.name}/{path.name}", path, "submission", None, read_submission(path)
    )


def align(splits: Sequence[Split], names: Sequence[str], what: str) -> list[Split]:
    """Reorder every split to the first one's row order; refuse different sets of rows."""
    ref = splits[0]
    out = [ref]
    for name, split in zip(names[1:], splits[1:], strict=True):
        if len(split.ids) == len(ref.ids) and np.array_equal(split.ids, ref.ids):
            out.append(split)
            continue
        only_here = np.setdiff1d(split.ids.astype(str), ref.ids.astype(str))
        only_ref = np.setdiff1d(ref.ids.astype(str), split.ids.astype(str))
        if len(only_here) or len(only_ref):
            example = str(only_here[0] if len(only_here) else only_ref[0])
            side = name if len(only_here) else names[0]
            raise ValueError(
                f"{what} rows differ between {names[0]} ({len(ref.ids)} rows) and {name} "
                f"({len(split.ids)} rows): {len(only_ref)} only in {names[0]}, "
                f"{len(only_here)} only in {name}, e.g. {example!r} (in {side}). "
                "Expected members predicted on the same images (same folds / eval set)."
            )
        out.append(split.take(pd.Index(split.ids).get_indexer(ref.ids)))
    return out
