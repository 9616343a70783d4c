"""Folds for honest estimates: fit on some validation rows, score on the others.

Out-of-fold rows of a K-fold parent carry their fold in ``val_probs.csv``; a holdout run's
rows all share one fold, so they are split into person-grouped folds instead (a person's
pictures never sit on both sides).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kit.runfolder import read_val_keys

__all__ = ["HonestFolds", "honest_folds", "member_folds"]


@dataclass(frozen=True)
class HonestFolds:
    """One fold id per row and where the folds came from ("fold column" / "person groups")."""

    ids: np.ndarray
    source: str

    @property
    def n_folds(self) -> int:
        return len(np.unique(self.ids))


def honest_folds(
    folds: Sequence[int] | np.ndarray | None,
    groups: Sequence[str] | np.ndarray | None,
    n_splits: int = 5,
) -> HonestFolds:
    """The given folds when they hold two or more, else ``n_splits`` person-grouped folds."""
    if folds is not None and len(np.unique(folds)) >= 2:
        return HonestFolds(np.asarray(folds), "fold column")
    if groups is None:
        raise ValueError(
            "cannot estimate honestly: the validation rows hold one fold and no person ids; "
            "expected a fold column with two or more folds, or person ids"
        )
    groups = np.asarray(groups)
    people = len(np.unique(groups))
    if people < 2:
        raise ValueError(
            f"cannot estimate honestly: the validation rows hold {people} person; expected at "
            "least 2 people (or two folds) to fit on some and score on the others"
        )
    out = np.empty(len(groups), dtype=np.int64)
    from sklearn.model_selection import GroupKFold  # seconds to import: only when folds are made

    split = GroupKFold(n_splits=min(n_splits, people))
    for k, (_, held) in enumerate(split.split(np.zeros(len(groups)), groups=groups)):
        out[held] = k
    return HonestFolds(out, "person groups")


def member_folds(run_dir: str | Path, val_ids: np.ndarray, n_splits: int = 5) -> HonestFolds:
    """Honest folds of the validation rows ``val_ids``, from ``run_dir``'s val_probs.csv."""
    keys = read_val_keys(run_dir).take(val_ids)
    return honest_folds(keys.folds, keys.person_ids, n_splits)
