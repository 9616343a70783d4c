"""Per-class bias calibration for macro F1: 18 additive log-probability biases.

Macro F1 weighs every class equally, so a rare class predicted a little more often can gain
more than the common classes lose. :func:`fit_biases` finds biases ``b`` so that
``argmax(log p + b)`` maximises macro F1 on out-of-fold (or validation) rows, by coordinate
search: one class at a time, every value of a grid is scored at once (vectorised over the
grid), and only strict improvements are kept, so in-sample macro F1 never goes down.

The in-sample gain is optimistic: :func:`calibrate` also fits on some folds and scores on the
others (the ``fold`` column of a K-fold parent, or person-grouped folds for a holdout run), and
reports that honest estimate beside it. No library fits per-class decision offsets for macro
F1, hence this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kit.ensemble.folds import HonestFolds, honest_folds, member_folds
from kit.ensemble.result import EnsembleResult
from kit.labels import NUM_CLASSES, class_name
from kit.metrics import macro_f1

__all__ = [
    "GRID",
    "Calibration",
    "apply_biases",
    "calibrate",
    "calibrate_ensemble",
    "cross_validate",
    "fit_biases",
    "predict_with_biases",
]

#: Candidate values of one class's bias (natural log units): -3.0, -2.9, ..., 3.0.
GRID = np.round(np.linspace(-3.0, 3.0, 61), 10)
_EPS = 1e-12  # floor before taking logs, as in the geometric mean
_GAIN = 1e-12  # an improvement smaller than this is rounding, not a gain


def _logs(probs: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), _EPS, None))


def predict_with_biases(probs: np.ndarray, biases: Sequence[float] | np.ndarray) -> np.ndarray:
    """``argmax(log probs + biases)`` per row; equal maxima go to the lowest class id."""
    return (_logs(probs) + np.asarray(biases, dtype=np.float64)).argmax(axis=1)


def apply_biases(probs: np.ndarray, biases: Sequence[float] | np.ndarray) -> np.ndarray:
    """Calibrated probabilities ``softmax(log probs + biases)``: rows sum to 1, and their
    argmax is :func:`predict_with_biases`."""
    z = _logs(probs) + np.asarray(biases, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _best_for_class(
    logs: np.ndarray, truth: np.ndarray, b: np.ndarray, c: int, grid: np.ndarray
) -> tuple[float, float]:
    """The grid value of class ``c``'s bias with the best macro F1 (others fixed), and it.

    Raising ``c``'s bias only moves rows from their best other class to ``c``, so the
    confusion counts of every grid value follow from cumulative counts of the rows in the
    order they switch: O(rows + grid x classes), no confusion matrix per grid value.
    """
    z = logs + b
    z[:, c] = -np.inf
    other = z.argmax(axis=1)
    best_other = z[np.arange(len(z)), other]
    own = logs[:, c][None, :] + grid[:, None]  # (grid, n), increasing down the grid
    # argmax takes the lowest class id among equal values: c wins a tie only below `other`.
    wins = (own > best_other) | ((own == best_other) & (c < other))
    g = len(grid)
    first = np.where(wins.any(axis=0), wins.argmax(axis=0), g)  # grid index where c takes it
    k = NUM_CLASSES
    support = np.bincount(truth, minlength=k).astype(np.float64)
    pred0 = np.bincount(other, minlength=k).astype(np.float64)
    tp0 = np.bincount(other[truth == other], minlength=k).astype(np.float64)
    moved = np.bincount(first * k + other, minlength=(g + 1) * k).reshape(g + 1, k)
    hits = truth == other
    moved_tp = np.bincount(first[hits] * k + other[hits], minlength=(g + 1) * k)
    moved, moved_tp = moved.cumsum(0)[:g], moved_tp.reshape(g + 1, k).cumsum(0)[:g]
    own_tp = np.bincount(first[truth == c], minlength=g + 1).cumsum()[:g]
    pred, tp = pred0 - moved, tp0 - moved_tp
    pred[:, c], tp[:, c] = moved.sum(axis=1), own_tp
    denom = pred + support
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    scores = f1.mean(axis=1)
    i = int(np.argmax(scores))  # first best: the smallest such bias, deterministic
    return float(grid[i]), float(scores[i])


def fit_biases(
    probs: np.ndarray,
    truth: Sequence[int] | np.ndarray,
    *,
    grid: np.ndarray = GRID,
    rounds: int = 4,
) -> np.ndarray:
    """18 biases maximising macro F1 of ``argmax(log probs + biases)`` on these rows.

    Starts at zero (the uncalibrated prediction) and keeps a new value only when it strictly
    improves macro F1, so the result never scores below the uncalibrated probabilities.
    """
    logs = _logs(probs)
    y = np.asarray(truth, dtype=np.int64)
    if logs.ndim != 2 or logs.shape != (len(y), NUM_CLASSES):
        raise ValueError(
            f"cannot calibrate: probabilities of shape {logs.shape} for {len(y)} labels; "
            f"expected ({len(y)}, {NUM_CLASSES})"
        )
    b = np.zeros(NUM_CLASSES)
    score = macro_f1(y, logs.argmax(axis=1))
    for _ in range(rounds):
        improved = False
        for c in range(NUM_CLASSES):
            value, s = _best_for_class(logs, y, b, c, grid)
            if s > score + _GAIN:
                b[c], score, improved = value, s, True
        if not improved:
            break
    return b


def cross_validate(
    probs: np.ndarray, truth: np.ndarray, fold_ids: np.ndarray, **fit_kwargs: Any
) -> tuple[np.ndarray, dict[Any, np.ndarray]]:
    """Out-of-fold calibrated predictions: each fold's rows predicted with biases fitted on
    the other folds only. Returns the predictions and the biases used for each fold."""
    probs, truth = np.asarray(probs), np.asarray(truth)
    pred = np.empty(len(truth), dtype=np.int64)
    used: dict[Any, np.ndarray] = {}
    for k in np.unique(fold_ids):
        held = fold_ids == k
        used[k.item() if isinstance(k, np.generic) else k] = b = fit_biases(
            probs[~held], truth[~held], **fit_kwargs
        )
        pred[held] = predict_with_biases(probs[held], b)
    return pred, used


@dataclass
class Calibration:
    """Fitted biases and macro F1 before / after: in-sample and the honest (cross-fitted)."""

    biases: np.ndarray
    f1_before: float  # uncalibrated, on every row
    f1_after: float  # calibrated with ``biases``, fitted on those same rows (optimistic)
    f1_honest: float  # each fold calibrated with biases fitted on the other folds
    n_folds: int
    folds_from: str  # "fold column" or "person groups"
    fold_biases: dict[Any, np.ndarray] = field(default_factory=dict, repr=False)

    def apply(self, probs: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of ``probs`` (e.g. the test rows)."""
        return apply_biases(probs, self.biases)

    def predict(self, probs: np.ndarray) -> np.ndarray:
        """Calibrated classes of ``probs``."""
        return predict_with_biases(probs, self.biases)

    def record(self) -> dict[str, Any]:
        """JSON-ready: biases by class id and name, and the three scores."""
        return {
            "biases": [float(x) for x in self.biases],
            "classes": [class_name(c) for c in range(NUM_CLASSES)],
            "val_macro_f1_before": self.f1_before,
            "val_macro_f1_after_in_sample": self.f1_after,
            "val_macro_f1_after_honest": self.f1_honest,
            "honest_folds": self.n_folds,
            "honest_folds_from": self.folds_from,
            "how": "test class = argmax(log p + bias); biases fitted on validation rows",
        }

    def summary(self) -> str:
        """The lines the CLI prints."""
        return (
            f"calibration: val macro F1 {self.f1_before:.4f} -> {self.f1_after:.4f} in-sample, "
            f"{self.f1_honest:.4f} honest ({self.n_folds} folds by {self.folds_from})"
        )


def calibrate(
    probs: np.ndarray,
    truth: Sequence[int] | np.ndarray,
    *,
    folds: Sequence[int] | np.ndarray | HonestFolds | None = None,
    groups: Sequence[str] | np.ndarray | None = None,
    n_splits: int = 5,
    **fit_kwargs: Any,
) -> Calibration:
    """Fit biases on every row, and estimate their gain honestly by cross-fitting.

    ``folds`` (the ``fold`` column of out-of-fold rows) are used when they hold two or more
    folds; otherwise ``groups`` (person ids) are split into ``n_splits`` person-grouped folds.
    A :class:`~kit.ensemble.folds.HonestFolds` is used as it is.
    """
    y = np.asarray(truth, dtype=np.int64)
    biases = fit_biases(probs, y, **fit_kwargs)
    split = folds if isinstance(folds, HonestFolds) else honest_folds(folds, groups, n_splits)
    honest, used = cross_validate(probs, y, split.ids, **fit_kwargs)
    return Calibration(
        biases=biases,
        f1_before=macro_f1(y, np.asarray(probs).argmax(axis=1)),
        f1_after=macro_f1(y, predict_with_biases(probs, biases)),
        f1_honest=macro_f1(y, honest),
        n_folds=len(used),
        folds_from=split.source,
        fold_biases=used,
    )


def calibrate_ensemble(result: EnsembleResult, **kwargs: Any) -> Calibration:
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
    cal = calibrate(result.val_probs, result.val_truth, folds=split, **kwargs)
    if result.test_probs is not None:
        result.test_labels = cal.predict(result.test_probs)
        result.test_probs = cal.apply(result.test_probs)
    result.calibration = cal.record()
    return cal
