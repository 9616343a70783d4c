"""Ways to combine members' predictions: a registry of voting methods.

Every probability method takes a list of ``(n, 18)`` probability arrays and optional
non-negative weights (normalised here) and returns ``(n, 18)`` rows that sum to 1. The hard
vote takes ``(n,)`` label arrays and returns labels.

Ties are broken deterministically:

* :func:`argmax` (every probability method) takes the lowest class id among equal maxima.
* :func:`hard_vote` takes the class with the most (weighted) votes; among tied classes the
  one with the highest (weighted) summed probability when every member has probabilities;
  then the class voted by the earliest member in the list; then the lowest class id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from kit.ensemble.hard import count_ballots, hard_vote, prepare_ballots
from kit.ensemble.voting import (
    argmax,
    geometric_from_logs,
    geometric_mean,
    log_stack,
    mean_rank,
    normalise_weights,
    rank_average,
    rank_stack,
    soft_vote,
    stack_members,
    weighted_mean,
)
from kit.registry import Registry

__all__ = [
    "METHODS",
    "Method",
    "argmax",
    "combine",
    "geometric_mean",
    "get_method",
    "hard_vote",
    "normalise_weights",
    "rank_average",
    "soft_vote",
]

Prepared = Any


@dataclass(frozen=True)
class Method:
    """A registered voting method, split so a weight search prepares the inputs only once."""

    #: The name it was registered under first (an alias such as ``weighted`` shares it).
    name: str
    #: False only for the hard vote, which also takes submission CSVs (labels only).
    needs_probs: bool
    #: (probs per member or None, labels per member) -> inputs for ``apply``
    prepare: Callable[[Sequence[np.ndarray | None], Sequence[np.ndarray]], Prepared]
    #: (prepared, normalised weights) -> (probs or None, labels)
    apply: Callable[[Prepared, np.ndarray], tuple[np.ndarray | None, np.ndarray]]
    #: One member alone reproduces that member's own predictions, so a search can start there.
    searchable: bool = True
    #: Methods that learn from validation labels (``stack``): (validation probs per member,
    #: truth, honest fold ids) -> a fitted object with ``.oof`` (out-of-fold validation
    #: probs) and ``.predict(probs per member)``. ``prepare`` / ``apply`` then only refuse.
    fit: Callable[..., Any] | None = None

    def run(
        self, probs: Sequence[np.ndarray | None], labels: Sequence[np.ndarray], w: np.ndarray
    ) -> tuple[np.ndarray | None, np.ndarray]:
        return self.apply(self.prepare(probs, labels), w)


def _with_labels(fn: Callable[[Prepared, np.ndarray], np.ndarray]) -> Callable:
    def apply(prepared: Prepared, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = fn(prepared, w)
        return out, argmax(out)

    return apply


#: method name (``--method``) -> its :class:`Method`.
METHODS: Registry[Method] = Registry("ensemble_method")
METHODS.register(
    "soft", Method("soft", True, lambda p, _: stack_members(p), _with_labels(weighted_mean))
)
# The same vote: the two names differ only in the default weights (``weighted`` searches them
# when none are given, see kit.ensemble.core), so one entry serves both.
METHODS.register("weighted", METHODS.get("soft"))
METHODS.register(
    "geometric",
    Method("geometric", True, lambda p, _: log_stack(p), _with_labels(geometric_from_logs)),
)
METHODS.register(
    "rank",
    Method("rank", True, lambda p, _: rank_stack(p), _with_labels(mean_rank), searchable=False),
)
METHODS.register(
    "hard",
    Method(
        "hard", False, lambda p, y: prepare_ballots(y, p), lambda b, w: (None, count_ballots(b, w))
    ),
)


def get_method(name: str) -> Method:
    """The registered method called ``name``; :class:`~kit.registry.UnknownName` otherwise."""
    return METHODS.use(name)


def combine(
    method: str,
    probs: Sequence[np.ndarray | None],
    labels: Sequence[np.ndarray] | None = None,
    weights: Sequence[float] | None = None,
) -> tuple[np.ndarray | None, np.ndarray]:
    """Run ``method`` on members' probabilities (or labels): ``(probs or None, labels)``."""
    m = get_method(method)
    if m.needs_probs and any(p is None for p in probs):
        raise ValueError(f"method {method!r} needs probabilities from every member")
    if labels is None:
        labels = [argmax(p) for p in probs]
    w = normalise_weights(weights, len(labels))
    return m.run(probs, labels, w)
