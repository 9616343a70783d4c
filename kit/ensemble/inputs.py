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

from kit.runfolder import Split, read_predictions, read_submission, read_task_predictions

__all__ = ["Member", "align", "load_member"]


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
    per_task = read_task_predictions(path)  # a per-task run: merged by kit.ensemble.tasks
    if per_task is not None:
        task, val, test = per_task
        return Member(path.name, path, task, val, test)
    return Member(path.name, path, "run", *read_predictions(path))


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
