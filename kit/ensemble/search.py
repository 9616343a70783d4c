"""Weight search: non-negative member weights that maximise validation macro F1.

Coordinate ascent over a grid, started from "all weight on the best single member" (or from
equal weights when those score at least as well) and from a few seeded random (Dirichlet)
starts, then refined on a finer grid. Only strict improvements are accepted, so the result
is never worse than the best member on the validation rows it was searched on.
Deterministic for a given seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from kit.ensemble.methods import argmax, get_method, normalise_weights
from kit.metrics import macro_f1

__all__ = ["SearchResult", "search_weights"]


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


class _Objective:
    """Validation macro F1 of a weight vector, with a cache: ascent revisits points."""

    def __init__(self, method: str, probs: list[np.ndarray], y_true: np.ndarray) -> None:
        self.method, self.y_true = get_method(method), y_true
        self.labels = [argmax(p) for p in probs]
        self.prepared = self.method.prepare(probs, self.labels)
        self._cache: dict[tuple[float, ...], float] = {}

    def __call__(self, w: np.ndarray) -> float:
        w = normalise_weights(w, len(self.labels))
        key = tuple(np.round(w, 12))
        if key not in self._cache:
            _, pred = self.method.apply(self.prepared, w)
            self._cache[key] = macro_f1(self.y_true, pred)
        return self._cache[key]

    @property
    def evaluations(self) -> int:
        return len(self._cache)


def _ascend(
    f: Callable[[np.ndarray], float], w: np.ndarray, score: float, grid: np.ndarray, rounds: int
) -> tuple[np.ndarray, float]:
    """Coordinate ascent: set one weight at a time to each grid value, keep strict gains."""
    for _ in range(rounds):
        improved = False
        for i in range(len(w)):
            for g in grid:
                cand = w.copy()
                cand[i] = g
                if cand.sum() <= 0 or np.array_equal(cand, w):
                    continue
                s = f(cand)
                if s > score + 1e-12:
                    # Keep the largest weight at 1 so the absolute grid stays meaningful.
                    w, score, improved = cand / cand.max(), s, True
        if not improved:
            break
    return w, score


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
    y = np.asarray(y_true)
    probs = _check(members_val_probs, y)
    f = _Objective(method, probs, y)
    member_scores = [macro_f1(y, lab) for lab in f.labels]
    m = len(probs)
    best_i = int(np.argmax(member_scores))  # first best on ties: deterministic
    w0 = np.eye(m)[best_i]
    if f(np.ones(m)) >= f(w0):  # equal weights tie or beat the best member: more robust
        w0 = np.ones(m)
    best_w, best = _ascend(f, w0, f(w0), np.linspace(0, 1, grid_steps + 1), rounds)
    rng = np.random.default_rng(seed)
    for _ in range(restarts if m > 1 else 0):
        start = rng.dirichlet(np.ones(m))
        w, s = _ascend(f, start / start.max(), f(start), np.linspace(0, 1, grid_steps + 1), rounds)
        if s > best + 1e-12:
            best_w, best = w, s
    best_w, best = _ascend(f, best_w, best, np.linspace(0, 1, fine_steps + 1), rounds)
    weights = (best_w / best_w.sum()).tolist()
    return SearchResult(method, weights, float(best), member_scores, f.evaluations)
