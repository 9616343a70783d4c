"""An ensemble's result (``EnsembleResult``, one ``MemberScore`` per member) and the files
``write`` puts beside its submission: the record ``<stem>.json`` and, calibrated, the biases."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kit.ensemble.search import SearchResult
from kit.io import write_json
from kit.runfolder import SUBMISSION_COLUMNS, TEST_PROBS, write_submission

__all__ = ["EnsembleResult", "MemberScore", "biases_path", "record_path", "write"]


@dataclass
class MemberScore:
    """One row of the member table."""

    name: str
    path: str
    kind: str
    val_macro_f1: float | None
    weight: float


@dataclass
class EnsembleResult:
    """Combined predictions; ``test_probs`` / ``val_probs`` are None for the hard vote."""

    method: str
    weights: list[float]
    members: list[MemberScore]
    test_ids: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    test_probs: np.ndarray | None = None
    val_ids: np.ndarray | None = None
    val_truth: np.ndarray | None = None
    val_labels: np.ndarray | None = None
    val_probs: np.ndarray | None = None
    val_scores: dict[str, Any] = field(default_factory=dict)
    search: SearchResult | None = None
    val_note: str | None = None  # why there is no ensemble validation score
    calibration: dict[str, Any] | None = None  # kit.ensemble.calibrate's record, when applied
    fitted: dict[str, Any] | None = None  # what a method fitted on validation (stack) did

    @property
    def val_macro_f1(self) -> float | None:
        return self.val_scores.get("macro_f1")

    def member_table(self) -> pd.DataFrame:
        """name, kind, val_macro_f1, weight: one row per member."""
        rows = [(m.name, m.kind, m.val_macro_f1, m.weight) for m in self.members]
        return pd.DataFrame(rows, columns=["name", "kind", "val_macro_f1", "weight"])

    def record(self) -> dict[str, Any]:
        """What ``write`` stores as JSON beside the submission."""
        scores = {k: v for k, v in self.val_scores.items() if k != "confusion"}
        known = [m.val_macro_f1 for m in self.members if m.val_macro_f1 is not None]
        return {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "method": self.method,
            "weights": self.weights,
            "members": [asdict(m) for m in self.members],
            "scores": {"val": scores or None, "best_member_val_macro_f1": max(known, default=None)},
            "weight_search": None if self.search is None else asdict(self.search),
            "n_test": None if self.test_ids is None else len(self.test_ids),
            "val_note": self.val_note,
            "calibration": self.calibration,
            "fitted": self.fitted,
        }


def biases_path(path: str | os.PathLike[str]) -> Path:
    """Where :func:`write` puts the calibration biases of submission ``path``."""
    path = Path(path)
    return path.with_name(f"{path.stem}_biases.json")


def record_path(path: str | os.PathLike[str]) -> Path:
    """Where :func:`write` puts the record of the submission ``path``: ``<stem>.json`` beside it.

    A submission whose own name is that (``-o out.json``) is refused: the record would overwrite
    it. Letter case does not tell names apart (it does not on macOS and Windows disks).
    """
    path = Path(path)
    record = path.with_suffix(".json")
    if record.name.lower() == path.name.lower():
        raise ValueError(
            f"{path}: the ensemble's record is written beside the submission as <name>.json, "
            f"so a submission named {path.name} would be overwritten by it; name the "
            f"submission .csv, e.g. -o {path.with_suffix('.csv')}"
        )
    return record


def write(result: EnsembleResult, path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``ImageID,ans`` (test row order) and ``<stem>.json`` (the record) beside it;
    a calibrated result also writes its biases to ``<stem>_biases.json``. Nothing is written
    when the record's name would collide (see :func:`record_path`)."""
    record = record_path(path)
    if result.test_labels is None:
        raise ValueError(f"this ensemble has no test predictions (no member has {TEST_PROBS})")
    path = Path(path)
    ids = pd.DataFrame({SUBMISSION_COLUMNS[0]: result.test_ids})
    write_submission(result.test_labels, ids, path)
    write_json(record, result.record())
    if result.calibration is not None:
        write_json(biases_path(path), result.calibration)
    return path, record
