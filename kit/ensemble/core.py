"""Ensembling end to end: :func:`ensemble` combines members into an :class:`EnsembleResult`,
:func:`calibrate_ensemble` fits per-class biases on it, :func:`write` writes the submission,
its record (``<stem>.json``) and, calibrated, the biases.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kit.ensemble.inputs import (
    Member,
    align,
    aligned,
    load_member,
    member_folds,
    merge_task_members,
)
from kit.ensemble.methods import argmax, combine, get_method, normalise_weights
from kit.ensemble.search import GRID, Calibration, SearchResult, calibrate, search_weights
from kit.io import write_json
from kit.metrics import macro_f1, summarize
from kit.runfolder import SUBMISSION_COLUMNS, TEST_PROBS, Split, read_submission, write_submission

__all__ = [
    "EnsembleResult",
    "MemberScore",
    "biases_path",
    "calibrate_ensemble",
    "ensemble",
    "record_path",
    "write",
]


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
    calibration: dict[str, Any] | None = None  # calibrate_ensemble's record, when applied
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


Weights = Sequence[float] | str | None


def _truth(members: list[Member], val: list[Split]) -> np.ndarray:
    truth = val[0].truth
    for m, s in zip(members[1:], val[1:], strict=True):
        differ = int(np.sum(s.truth != truth))
        if differ:
            warnings.warn(
                f"{m.name}: {differ} validation labels differ from {members[0].name} "
                "(label fixes?); scoring against the first member's labels",
                stacklevel=3,
            )
    return truth


def _weights(
    weights: Weights,
    method: str,
    members: list[Member],
    val: list[Split] | None,
    why: str | None,
    seed: int,
) -> tuple[np.ndarray, SearchResult | None]:
    if weights is None and method == "weighted":
        weights = "auto"
    if isinstance(weights, str):
        if weights != "auto":
            raise ValueError(
                f"weights must be None, 'auto' or one number per member; got {weights!r}"
            )
        if val is None:
            raise ValueError(
                f"cannot search weights: they are fitted on validation rows shared by every "
                f"member, but {why.rstrip('.')}. Give weights by hand (e.g. --weights 1,1) instead."
            )
        found = search_weights([s.probs for s in val], val[0].truth, method, seed=seed)
        return np.asarray(found.weights), found
    return normalise_weights(weights, len(members)), None


def ensemble(
    members: Sequence[str | os.PathLike[str] | Member],
    method: str = "soft",
    weights: Weights = None,
    *,
    info: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> EnsembleResult:
    """Combine run folders, K-fold parents and submission CSVs with a registered method.

    ``weights``: None (equal; ``weighted`` then searches), ``"auto"`` (search on the shared
    validation rows) or one non-negative number per member. Test rows follow the first
    member's order, or ``info`` (an info.csv) when given; members whose test rows differ are
    refused. Validation rows are matched by ``image_id``; members whose validation rows differ
    (e.g. runs on different splits) still vote on test, but without an ensemble validation
    score (``val_note`` says why) and without weight search. Submission CSVs only join the
    ``hard`` vote. Per-task runs are first merged into one 18-way member
    (:func:`~kit.ensemble.inputs.merge_task_members`).
    """
    loaded = merge_task_members([m if isinstance(m, Member) else load_member(m) for m in members])
    if not loaded:
        raise ValueError("no members given; expected at least one run folder or submission CSV")
    spec = get_method(method)
    csvs = [m.name for m in loaded if not m.has_probs]
    if spec.needs_probs and csvs:
        raise ValueError(
            f"method {method!r} needs probabilities, but {csvs} are submission CSVs "
            "(ImageID,ans: labels only). Use --method hard, or pass their run folders."
        )
    val, why = aligned(loaded, "val")  # without it the vote on test can still go ahead
    if spec.fit is not None and weights is not None:
        raise ValueError(
            f"method {spec.name!r} learns how much to trust each member; leave --weights out"
        )
    if spec.fit is not None and val is None:
        raise ValueError(
            f"method {spec.name!r} fits a meta-model on validation rows shared by every member, "
            f"but {why.rstrip('.')}. Use members of the same split (or K-fold parents of the "
            "same folds), or another method."
        )
    w, found = _weights(weights, method, loaded, val, why, seed)
    result = EnsembleResult(method, w.tolist(), [], search=found, val_note=why)
    for m, wm in zip(loaded, w, strict=True):
        score = None if m.val is None else macro_f1(m.val.truth, m.val.labels)
        result.members.append(MemberScore(m.name, str(m.path), m.kind, score, float(wm)))
    fitted = None
    if val is not None:
        result.val_ids, result.val_truth = val[0].ids, _truth(loaded, val)
        if spec.fit is not None:
            folds = member_folds(loaded[0].path, val[0].ids)
            fitted = spec.fit([s.probs for s in val], result.val_truth, folds.ids, seed=seed)
            result.val_probs, result.val_labels = fitted.oof, argmax(fitted.oof)
            result.fitted = {"val_scores": "out-of-fold", "folds": folds.n_folds}
            result.fitted["folds_from"] = folds.source
        else:
            result.val_probs, result.val_labels = combine(
                method, [s.probs for s in val], [s.labels for s in val], w
            )
        result.val_scores = summarize(result.val_truth, result.val_labels)
    lacking = [m.name for m in loaded if m.test is None]
    if lacking and len(lacking) < len(loaded):
        raise ValueError(f"{lacking} have no test predictions ({TEST_PROBS}); others do")
    test, _ = aligned(loaded, "test")
    if test is not None:
        if info is not None:  # info.csv has the submission's columns
            order = read_submission(info)
            names = [f"{info}", *(str(s.source) for s in test)]
            test = align([Split(order.ids, order.labels), *test], names, "test")[1:]
        result.test_ids = test[0].ids
        if fitted is not None:
            result.test_probs = fitted.predict([s.probs for s in test])
            result.test_labels = argmax(result.test_probs)
        else:
            result.test_probs, result.test_labels = combine(
                method, [s.probs for s in test], [s.labels for s in test], w
            )
    return result


def calibrate_ensemble(
    result: EnsembleResult, *, grid: np.ndarray = GRID, rounds: int = 4
) -> Calibration:
    """Calibrate an ensemble (or one run) in place: biases fitted on its validation rows,
    test probabilities and labels replaced by calibrated ones, ``result.calibration`` set.

    Honest folds come from the first member's ``val_probs.csv`` (``fold``, ``person_id``).
    """
    if result.val_probs is None:
        why = (
            f"method {result.method!r} gives labels, not probabilities"
            if result.method == "hard"
            else (result.val_note or "no validation probabilities").rstrip(".")
        )
        raise ValueError(
            f"cannot calibrate: biases are fitted on the ensemble's validation probabilities, "
            f"but {why}. Use a probability method (soft, weighted, geometric) on members that "
            "share validation rows."
        )
    split = member_folds(result.members[0].path, result.val_ids)
    cal = calibrate(result.val_probs, result.val_truth, folds=split, grid=grid, rounds=rounds)
    if result.test_probs is not None:
        result.test_labels = cal.predict(result.test_probs)
        result.test_probs = cal.apply(result.test_probs)
    result.calibration = cal.record()
    return cal


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
