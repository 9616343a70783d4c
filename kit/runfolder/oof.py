"""Readers of the row keys of ``val_probs.csv``: which person and fold each row belongs to.

Calibration and stacking estimate their gain honestly by fitting on some folds and scoring
on the others; these readers give them the ``person_id`` and ``fold`` of each validation row,
with the same checks as :func:`kit.runfolder.read_val_probs`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kit.runfolder.names import VAL_PROBS
from kit.runfolder.predictions import checked_numbers, read_checked_csv

__all__ = ["ValKeys", "read_val_keys"]


@dataclass(frozen=True)
class ValKeys:
    """Per validation row: image id, person id and fold (the run's validation fold)."""

    ids: np.ndarray
    person_ids: np.ndarray
    folds: np.ndarray

    def take(self, ids: np.ndarray) -> ValKeys:
        """These keys in the row order of ``ids`` (every id must be present)."""
        pos = pd.Index(self.ids).get_indexer(ids)
        if (pos < 0).any():
            missing = ids[int(np.flatnonzero(pos < 0)[0])]
            raise ValueError(f"validation row {missing!r} has no person / fold in this file")
        return ValKeys(self.ids[pos], self.person_ids[pos], self.folds[pos])


def read_val_keys(path: str | Path) -> ValKeys:
    """``image_id, person_id, fold`` of ``val_probs.csv`` (a file, or the run folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / VAL_PROBS
    df = read_checked_csv(path, ["image_id", "person_id", "fold"], ["image_id", "person_id"])
    folds = checked_numbers(path, df, ["fold"])[:, 0].astype(np.int64)
    return ValKeys(df["image_id"].to_numpy(object), df["person_id"].to_numpy(object), folds)
