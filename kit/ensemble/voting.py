"""Probability voting on plain arrays: (weighted) mean, geometric mean, rank average.

Each function takes a list of ``(n, 18)`` probability arrays and optional non-negative
weights (normalised to sum to 1) and returns ``(n, 18)`` rows summing to 1. :func:`argmax`
turns them into classes, equal maxima going to the lowest class id.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kit.labels import NUM_CLASSES

# Each vote is split in two, stacking the members once and weighting them many times, so a
# weight search (kit.ensemble.methods) prepares its inputs only once.
__all__ = [
    "EPS",
    "argmax",
    "geometric_from_logs",
    "geometric_mean",
    "log_stack",
    "mean_rank",
    "normalise_weights",
    "rank_average",
    "rank_stack",
    "soft_vote",
    "stack_members",
    "weighted_mean",
]

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


def stack_members(probs: Sequence[np.ndarray]) -> np.ndarray:
    """The members' ``(n, 18)`` probabilities as one ``(members, n, 18)`` array, checked."""
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
    stack = stack_members(probs)
    return weighted_mean(stack, normalise_weights(weights, len(stack)))


def weighted_mean(stack: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The soft vote of :func:`stack_members`' output under normalised weights ``w``."""
    return np.tensordot(w, stack, axes=1)


def geometric_mean(
    probs: Sequence[np.ndarray], weights: Sequence[float] | None = None
) -> np.ndarray:
    """(Weighted) geometric mean of probabilities clipped at ``EPS``, rows renormalised."""
    logs = log_stack(probs)
    return geometric_from_logs(logs, normalise_weights(weights, len(logs)))


def log_stack(probs: Sequence[np.ndarray]) -> np.ndarray:
    """:func:`stack_members` in logs clipped at ``EPS``, for :func:`geometric_from_logs`."""
    return np.log(np.clip(stack_members(probs), EPS, None))


def geometric_from_logs(logs: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The geometric mean of :func:`log_stack`'s output under normalised weights ``w``."""
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
    ranks = rank_stack(probs)
    return mean_rank(ranks, normalise_weights(weights, len(ranks)))


def rank_stack(probs: Sequence[np.ndarray]) -> np.ndarray:
    """Each member's per-class ranks in [0, 1], stacked: the input of :func:`mean_rank`."""
    return np.stack([_ranks01(p) for p in stack_members(probs)])


def mean_rank(ranks: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The rank average of :func:`rank_stack`'s output under normalised weights ``w``."""
    mean = np.tensordot(w, ranks, axes=1)
    total = mean.sum(axis=1, keepdims=True)
    return np.divide(mean, total, out=np.full_like(mean, 1.0 / NUM_CLASSES), where=total > 0)
