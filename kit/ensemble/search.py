"""Weight search: non-negative member weights that maximise validation macro F1.

Coordinate ascent over a grid, started from "all weight on the best single member" (or from
equal weights when those score at least as well) and from a few seeded random (Dirichlet)
starts, then refined on a finer grid. Only strict improvements are accepted, so the result
is never worse than the best member on the validation rows it was searched on.
Deterministic for a given seed.

The objective is vectorised: one coordinate step scores every grid value at once. For the
methods whose prediction is the argmax of a weighted sum of prepared member arrays (``soft``,
``weighted``: probabilities; ``geometric``: log probabilities) the candidates' scores are the
current sum plus ``(g - w_i) * X_i``, their labels one argmax, and their macro F1 one
``np.bincount`` of confusion counts; the hard vote (tie rules) is applied per candidate. The
reported score is recomputed with the method itself at the returned weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kit.ensemble.methods import argmax, get_method, normalise_weights
from kit.labels import NUM_CLASSES
from kit.metrics import f1_from_confusion, macro_f1

__all__ = ["SearchResult", "search_weights"]

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
