"""The hard vote: (weighted) majority over members' predicted classes.

Ties: the class with the most (weighted) votes; among tied classes the one with the highest
(weighted) summed probability when every member has probabilities; then the class voted by
the earliest member in the list; then the lowest class id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kit.ensemble.voting import argmax, normalise_weights, stack_members
from kit.labels import NUM_CLASSES

# prepare_ballots / count_ballots: the vote split so a weight search prepares it once
__all__ = ["Ballots", "count_ballots", "hard_vote", "prepare_ballots"]

# Vote totals closer than this are a tie: weighted votes are float sums.
_TIE_TOL = 1e-9


@dataclass(frozen=True)
class Ballots:
    """Hard-vote inputs prepared once: votes per member, one-hot votes, probabilities."""

    labels: np.ndarray  # (members, n)
    one_hot: np.ndarray  # (members, n, 18)
    probs: np.ndarray | None  # (members, n, 18) when every member has probabilities


def prepare_ballots(
    labels: Sequence[np.ndarray], probs: Sequence[np.ndarray | None] | None
) -> Ballots:
    """The members' votes checked and one-hot encoded, with their probabilities if all have them."""
    if len(labels) == 0:
        raise ValueError("no members to combine; expected at least one")
    votes = np.stack([np.asarray(y, dtype=np.int64) for y in labels])
    if votes.min() < 0 or votes.max() >= NUM_CLASSES:
        raise ValueError(f"labels must be in 0..{NUM_CLASSES - 1}")
    have_probs = probs is not None and len(probs) == len(labels)
    stack = stack_members(probs) if have_probs and all(p is not None for p in probs) else None
    return Ballots(votes, np.eye(NUM_CLASSES)[votes], stack)


def count_ballots(ballots: Ballots, w: np.ndarray) -> np.ndarray:
    """The winning class per row under normalised weights ``w``; ties as in the module doc."""
    votes = np.tensordot(w, ballots.one_hot, axes=1)
    tied = votes >= votes.max(axis=1, keepdims=True) - _TIE_TOL
    if ballots.probs is not None:
        best = np.where(tied, np.tensordot(w, ballots.probs, axes=1), -np.inf)
        tied &= best >= best.max(axis=1, keepdims=True) - _TIE_TOL
    out = argmax(tied.astype(np.int8))  # lowest tied class id, the last resort
    undecided = tied.sum(axis=1) > 1
    if undecided.any():
        rows = np.arange(len(out))
        for ym in ballots.labels[::-1]:  # later members first so earlier ones overwrite
            hit = undecided & tied[rows, ym]
            out[hit] = ym[hit]
    return out


def hard_vote(
    labels: Sequence[np.ndarray],
    weights: Sequence[float] | None = None,
    probs: Sequence[np.ndarray | None] | None = None,
) -> np.ndarray:
    """(Weighted) majority vote over the members' predicted classes; ties as in the module doc."""
    ballots = prepare_ballots(labels, probs)
    return count_ballots(ballots, normalise_weights(weights, len(ballots.labels)))
