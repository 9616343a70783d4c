"""What an ensemble searches on validation rows for macro F1: member weights
(:func:`search_weights`) and per-class log-probability biases (:func:`calibrate`); see
docs/ensembling.md, Weight search and Calibration.

Both are coordinate searches that keep only strict gains, so the result never scores below its
start (the best member; the uncalibrated probabilities) on the rows it was fitted on. Both are
vectorised over the grid: for the methods whose labels are the argmax of a weighted sum
(``soft``, ``weighted``, ``geometric``) a step is a rank-1 update and one ``np.bincount`` of
confusion counts; for a bias, the counts follow from the order in which rows switch class.
Calibration also reports an honest estimate, cross-fitted over folds. No library fits
per-class decision offsets for macro F1, hence this code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kit.ensemble.inputs import HonestFolds, honest_folds
from kit.ensemble.methods import EPS, argmax, get_method, normalise_weights
from kit.labels import NUM_CLASSES, class_name
from kit.metrics import f1_from_confusion, macro_f1

__all__ = [
    "GRID",
    "Calibration",
    "SearchResult",
    "apply_biases",
    "calibrate",
    "cross_validate",
    "fit_biases",
    "predict_with_biases",
    "search_weights",
]


#: Methods whose labels are ``argmax(sum_j w_j * prepared[j])`` (positive scaling of the
#: weights does not move an argmax), so a coordinate step is one rank-1 update.
_LINEAR = frozenset({"soft", "weighted", "geometric"})
#: Candidate score arrays are built in blocks of at most this many numbers (bounded memory).
_BLOCK = 2**22
_TOL = 1e-12


@dataclass
class SearchResult:
    """Best weights found (summing to 1), their validation score and each member's alone."""

    method: str
    weights: list[float]
    score: float
    member_scores: list[float]
    evaluations: int

    @property
    def best_member_score(self) -> float:
        return max(self.member_scores)


def _counts(y: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """Confusion counts (k, 18, 18) of every row of ``preds`` (k, n) against ``y`` (n,)."""
    k, c = len(preds), NUM_CLASSES
    codes = (np.arange(k)[:, None] * c + y[None, :]) * c + preds
    return np.bincount(codes.ravel(), minlength=k * c * c).reshape(k, c, c)


class _Objective:
    """Validation macro F1 of weight vectors, several candidates per call."""

    def __init__(self, method: str, probs: list[np.ndarray], y_true: np.ndarray) -> None:
        self.method, self.y = get_method(method), y_true
        self.labels = [argmax(p) for p in probs]
        self.prepared = self.method.prepare(probs, self.labels)
        self.stack = np.asarray(self.prepared, np.float64) if method in _LINEAR else None
        if self.stack is not None:  # each member's highest and lowest class score per row
            self.hi, self.lo = self.stack.max(axis=2), self.stack.min(axis=2)
        self.evaluations = 0

    def exact(self, w: np.ndarray) -> float:
        """The method's own macro F1 at ``w`` (what is reported)."""
        _, pred = self.method.apply(self.prepared, normalise_weights(w, len(self.labels)))
        return macro_f1(self.y, pred)

    def start(self, w: np.ndarray) -> None:
        """Make ``w`` the point that :meth:`step` varies."""
        self.w = w.astype(np.float64)
        if self.stack is not None:
            self.base = np.tensordot(self.w, self.stack, axes=1)
            self._settle()

    def move(self, i: int, g: float) -> None:
        """Set weight ``i`` to ``g`` and rescale so the largest weight is 1."""
        if self.stack is not None:
            self.base += (g - self.w[i]) * self.stack[i]
        self.w[i] = g
        scale = self.w.max()
        self.w /= scale
        if self.stack is not None:
            self.base /= scale
            self._settle()

    def _settle(self) -> None:
        self.current = self.base.argmax(axis=1)
        top2 = np.partition(self.base, -2, axis=1)[:, -2:]
        self.margin = top2[:, 1] - top2[:, 0]  # lead of the winning class
        self.cm = _counts(self.y, self.current[None])[0]

    def step(self, i: int, grid: np.ndarray) -> np.ndarray:
        """Scores of the current point with weight ``i`` set to each value of ``grid``."""
        self.evaluations += len(grid)
        if self.stack is None:
            preds = [self._apply_with(i, g) for g in grid]
            return f1_from_confusion(_counts(self.y, np.stack(preds))).mean(-1)
        delta = grid - self.w[i]
        xi = self.stack[i]
        # Moving weight i by d > 0 closes the winner's lead over class c by d * (x_c - x_win),
        # at most d * (max x - x_win); by d < 0, at most |d| * (x_win - min x). Rows that lead
        # by more keep their class. The rest are a linear race in d, so a row with the same
        # winner at both ends of the range (0 included) keeps it throughout too.
        up, down = max(delta.max(), 0.0), max(-delta.min(), 0.0)
        x_win = xi[np.arange(len(xi)), self.current]
        reach = np.maximum(up * (self.hi[i] - x_win), down * (x_win - self.lo[i]))
        rows = np.flatnonzero(self.margin <= reach * (1 + 1e-9) + 1e-12)
        base, x, current = self.base[rows], xi[rows], self.current[rows]
        moved = np.zeros(len(rows), bool)
        for d in (min(delta.min(), 0.0), max(delta.max(), 0.0)):
            moved |= (base + d * x).argmax(axis=1) != current
        rows, base, x, current = rows[moved], base[moved], x[moved], current[moved]
        out = np.empty(len(grid))
        block = max(1, _BLOCK // max(1, base.size))
        y = self.y[rows]
        rest = self.cm - _counts(y, current[None])[0]  # every row but the racing ones
        for s in range(0, len(grid), block):
            cands = base[None] + delta[s : s + block, None, None] * x[None]
            counts = rest[None] + _counts(y, cands.argmax(axis=2))
            out[s : s + block] = f1_from_confusion(counts).mean(-1)
        return out

    def _apply_with(self, i: int, g: float) -> np.ndarray:
        cand = self.w.copy()
        cand[i] = g
        return self.method.apply(self.prepared, cand / cand.sum())[1]


def _ascend(
    f: _Objective, w: np.ndarray, score: float, grid: np.ndarray, rounds: int
) -> tuple[np.ndarray, float]:
    """Coordinate ascent: set one weight at a time to each grid value in turn and keep every
    strict gain (the largest weight stays 1 so the absolute grid stays meaningful). The grid
    values still to try after a gain are scored together from the new point."""
    f.start(w)
    for _ in range(rounds):
        improved = False
        for i in range(len(w)):
            rest = grid
            while len(rest):
                others = f.w.sum() - f.w[i]
                ok = (rest != f.w[i]) & (rest + others > 0)
                scores = np.full(len(rest), -np.inf)
                if ok.any():
                    scores[ok] = f.step(i, rest[ok])
                gains = np.flatnonzero(scores > score + _TOL)
                if not len(gains):
                    break
                j = int(gains[0])  # the first gain in grid order, as a sequential scan takes
                f.move(i, float(rest[j]))
                score, improved, rest = float(scores[j]), True, rest[j + 1 :]
        if not improved:
            break
    return f.w.copy(), score


def _check(probs: Sequence[np.ndarray], y_true: np.ndarray) -> list[np.ndarray]:
    if len(probs) == 0:
        raise ValueError("no members to search weights for; expected at least one")
    arrays = [np.asarray(p, dtype=np.float64) for p in probs]
    for i, p in enumerate(arrays):
        if p.shape != (len(y_true), arrays[0].shape[1]):
            raise ValueError(
                f"member {i} has validation probabilities of shape {p.shape}; expected "
                f"({len(y_true)}, {arrays[0].shape[1]}) like y_true and member 0. Members must "
                "share the same validation rows (align them by image_id first)."
            )
    return arrays


def search_weights(
    members_val_probs: Sequence[np.ndarray],
    y_true: Sequence[int] | np.ndarray,
    method: str = "weighted",
    *,
    grid_steps: int = 10,
    fine_steps: int = 40,
    rounds: int = 4,
    restarts: int = 4,
    seed: int = 0,
) -> SearchResult:
    """Non-negative weights maximising macro F1 of ``method`` on shared validation rows.

    ``members_val_probs`` are aligned ``(n, 18)`` arrays (same rows, same order) and
    ``y_true`` the ``n`` true classes. The search starts from the best single member, so
    the returned score is never below it. ``method`` must be one whose single-member result
    is the member itself (``weighted``/``soft``, ``geometric``, ``hard``).
    """
    if not get_method(method).searchable:
        raise ValueError(
            f"weight search is not available for method {method!r}: one member's result is not "
            "that member's own prediction, so the search could not start from the best member. "
            "Give fixed weights instead."
        )
    y = np.asarray(y_true).astype(np.int64)
    probs = _check(members_val_probs, y)
    f = _Objective(method, probs, y)
    member_scores = [macro_f1(y, lab) for lab in f.labels]
    m = len(probs)
    best_i = int(np.argmax(member_scores))  # first best on ties: deterministic
    w0, s0 = np.eye(m)[best_i], member_scores[best_i]
    if m > 1 and (equal := f.exact(np.ones(m))) >= s0:  # ties or beats: more robust
        w0, s0 = np.ones(m), equal
    coarse = np.linspace(0, 1, grid_steps + 1)
    found = [_ascend(f, w0, s0, coarse, rounds)]
    rng = np.random.default_rng(seed)
    for _ in range(restarts if m > 1 else 0):
        start = rng.dirichlet(np.ones(m))
        start = start / start.max()
        found.append(_ascend(f, start, f.exact(start), coarse, rounds))
    # The best coarse optimum does not always refine best: refine each, keep the best.
    order = sorted(range(len(found)), key=lambda k: -found[k][1])  # stable: earlier first
    fine = np.linspace(0, 1, fine_steps + 1)
    refined, done = [], []
    for k in order:
        w, s = found[k]
        if any(np.allclose(w, d, rtol=0, atol=1e-12) for d in done):
            continue  # starts often meet at one optimum: refine it once
        done.append(w)
        refined.append(_ascend(f, w, s, fine, rounds))
    best_w = max(refined, key=lambda ws: ws[1])[0]  # the first best on ties
    score = f.exact(best_w)
    if score < s0:  # rounding broke an exact tie differently: keep the proven start
        best_w, score = w0, s0
    weights = (best_w / best_w.sum()).tolist()
    return SearchResult(method, weights, float(score), member_scores, f.evaluations)


#: Candidate values of one class's bias (natural log units): -3.0, -2.9, ..., 3.0.
GRID = np.round(np.linspace(-3.0, 3.0, 61), 10)
_GAIN = 1e-12  # an improvement smaller than this is rounding, not a gain


def _logs(probs: np.ndarray) -> np.ndarray:
    # floored as in the geometric mean
    return np.log(np.clip(np.asarray(probs, dtype=np.float64), EPS, None))


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
    probs: np.ndarray,
    truth: np.ndarray,
    fold_ids: np.ndarray,
    *,
    grid: np.ndarray = GRID,
    rounds: int = 4,
) -> tuple[np.ndarray, dict[Any, np.ndarray]]:
    """Out-of-fold calibrated predictions: each fold's rows predicted with biases fitted on
    the other folds only. Returns the predictions and the biases used for each fold."""
    probs, truth = np.asarray(probs), np.asarray(truth)
    pred = np.empty(len(truth), dtype=np.int64)
    used: dict[Any, np.ndarray] = {}
    for k in np.unique(fold_ids):
        held = fold_ids == k
        used[k.item() if isinstance(k, np.generic) else k] = b = fit_biases(
            probs[~held], truth[~held], grid=grid, rounds=rounds
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
    grid: np.ndarray = GRID,
    rounds: int = 4,
) -> Calibration:
    """Fit biases on every row, and estimate their gain honestly by cross-fitting.

    ``folds`` (the ``fold`` column of out-of-fold rows) are used when they hold two or more
    folds; otherwise ``groups`` (person ids) are split into ``n_splits`` person-grouped folds.
    A :class:`~kit.ensemble.inputs.HonestFolds` is used as it is.
    """
    y = np.asarray(truth, dtype=np.int64)
    biases = fit_biases(probs, y, grid=grid, rounds=rounds)
    split = folds if isinstance(folds, HonestFolds) else honest_folds(folds, groups, n_splits)
    honest, used = cross_validate(probs, y, split.ids, grid=grid, rounds=rounds)
    return Calibration(
        biases=biases,
        f1_before=macro_f1(y, np.asarray(probs).argmax(axis=1)),
        f1_after=macro_f1(y, predict_with_biases(probs, biases)),
        f1_honest=macro_f1(y, honest),
        n_folds=len(used),
        folds_from=split.source,
    )
