"""Probability voting on plain arrays: (weighted) mean, geometric mean, rank average.

Each function takes a list of ``(n, 18)`` probability arrays and optional non-negative
weights (normalised to sum to 1) and returns ``(n, 18)`` rows summing to 1. :func:`argmax`
turns them into classes, equal maxima going to the lowest class id.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kit.labels import NUM_CLASSES

__all__ = ["EPS", "argmax", "geometric_mean", "normalise_weights", "rank_average", "soft_vote"]

#: Floor applied before taking logs in :func:`geometric_mean`.
EPS = 1e-12


def normalise_weights(weights: Sequence[float] | np.ndarray | None, n_members: int) -> np.ndarray:
    """Weights as a float array summing to 1 (equal weights when ``None``)."""
    if weights is None:
        return np.full(n_members, 1.0 / n_members)
    w = np.asarray(weights, dtype=np.float64).ravel()
    if len(w) != n_members:
        raise ValueError(f"got {len(w)} weights for {n_members} members; expected one per member")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError(f"weights must be finite and non-negative, got {w.tolist()}")
    if w.sum() <= 0:
        raise ValueError(f"weights must not all be zero, got {w.tolist()}")
    return w / w.sum()


def _stack(probs: Sequence[np.ndarray]) -> np.ndarray:
    if len(probs) == 0:
        raise ValueError("no members to combine; expected at least one")
    arrays = [np.asarray(p, dtype=np.float64) for p in probs]
    shape = arrays[0].shape
    for i, a in enumerate(arrays):
        if a.ndim != 2 or a.shape[1] != NUM_CLASSES or a.shape != shape:
            raise ValueError(
                f"member {i} has probabilities of shape {a.shape}; expected {shape} "
                f"(every member (n, {NUM_CLASSES}) with the same n)"
            )
    return np.stack(arrays)


def argmax(probs: np.ndarray) -> np.ndarray:
    """Predicted class per row; equal maxima go to the lowest class id."""
    return np.asarray(probs).argmax(axis=1)  # numpy returns the first maximum


def soft_vote(probs: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """(Weighted) mean of the members' probabilities."""
    stack = _stack(probs)
    return _mean(stack, normalise_weights(weights, len(stack)))


def _mean(stack: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.tensordot(w, stack, axes=1)


def geometric_mean(
    probs: Sequence[np.ndarray], weights: Sequence[float] | None = None
) -> np.ndarray:
    """(Weighted) geometric mean of probabilities clipped at ``EPS``, rows renormalised."""
    logs = _logs(probs)
    return _geometric(logs, normalise_weights(weights, len(logs)))


def _logs(probs: Sequence[np.ndarray]) -> np.ndarray:
    return np.log(np.clip(_stack(probs), EPS, None))


def _geometric(logs: np.ndarray, w: np.ndarray) -> np.ndarray:
    logp = np.tensordot(w, logs, axes=1)
    # Shift by the row maximum so exp cannot underflow to an all-zero row.
    out = np.exp(logp - logp.max(axis=1, keepdims=True))
    return out / out.sum(axis=1, keepdims=True)


def _ranks01(p: np.ndarray) -> np.ndarray:
    """Per-column ranks of ``p`` over rows scaled to [0, 1]; equal values share their mean rank."""
    n = len(p)
    if n == 1:
        return np.full_like(p, 0.5)
    order = np.argsort(p, axis=0, kind="stable")
    ranks = np.empty_like(p)
    for c in range(p.shape[1]):  # mean rank over each run of equal values
        col = p[order[:, c], c]
        starts = np.flatnonzero(np.r_[True, col[1:] != col[:-1]])
        ends = np.r_[starts[1:], n]
        ranks[order[:, c], c] = np.repeat((starts + ends - 1) / 2.0, ends - starts)
    return ranks / (n - 1)


def rank_average(probs: Sequence[np.ndarray], weights: Sequence[float] | None = None) -> np.ndarray:
    """(Weighted) mean of each member's per-class ranks across rows, scaled to [0, 1].

    For member m and class c the rows are ranked by ``p_m[:, c]`` (lowest 0, highest 1,
    equal values share their mean rank; a single row gets 0.5). Rows of the averaged ranks
    are renormalised to sum to 1 so the result reads like probabilities.
    """
    ranks = _rank_stack(probs)
    return _rank_mean(ranks, normalise_weights(weights, len(ranks)))


def _rank_stack(probs: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([_ranks01(p) for p in _stack(probs)])


def _rank_mean(ranks: np.ndarray, w: np.ndarray) -> np.ndarray:
    mean = np.tensordot(w, ranks, axes=1)
    total = mean.sum(axis=1, keepdims=True)
    return np.divide(mean, total, out=np.full_like(mean, 1.0 / NUM_CLASSES), where=total > 0)
