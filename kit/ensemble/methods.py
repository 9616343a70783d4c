"""The ensemblers, plain functions on arrays, and the registry of voting methods (``--method``;
docs/ensembling.md, Methods and Stacking).

Probability methods take a list of ``(n, 18)`` arrays and optional non-negative weights
(normalised to sum to 1) and return ``(n, 18)`` rows summing to 1; :func:`hard_vote` takes
``(n,)`` labels. Each vote is split into :class:`Method`'s ``prepare`` (stack the members
once) and ``apply`` (weight them), so a weight search prepares its inputs only once.

Ties: :func:`argmax` takes the lowest class id among equal maxima. :func:`hard_vote` takes the
class with the most (weighted) votes; among tied classes the one with the highest (weighted)
summed probability when every member has probabilities; then the class voted by the earliest
member; then the lowest class id.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

from kit.labels import NUM_CLASSES
from kit.registry import Registry

if TYPE_CHECKING:  # scikit-learn loads with the first stacker: `python -m kit.ensemble --help`
    # and the other methods answer without it
    from sklearn.pipeline import Pipeline

__all__ = [
    "EPS",
    "METHODS",
    "STACK_C",
    "Ballots",
    "Method",
    "Stacker",
    "argmax",
    "combine",
    "count_ballots",
    "fit_stacker",
    "geometric_from_logs",
    "geometric_mean",
    "get_method",
    "hard_vote",
    "log_stack",
    "mean_rank",
    "normalise_weights",
    "prepare_ballots",
    "rank_average",
    "rank_stack",
    "soft_vote",
    "stack_features",
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
    if len(p) == 1:
        return np.full_like(p, 0.5)
    from scipy.stats import rankdata  # scipy.stats takes half a second to import

    return (rankdata(p, axis=0) - 1) / (len(p) - 1)


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
# when none are given, see kit.ensemble.core.ensemble), so one entry serves both.
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


#: Inverse regularisation strength of the meta-model (scikit-learn's ``C``).
STACK_C = 1.0
# Floor before the log: a member's 1e-30 carries no more information than 1e-6, and
# bounded features keep the solver quick.
_FLOOR = 1e-6
# Solver tolerance: 1e-3 stops after about half the iterations of scikit-learn's 1e-4 default
# at 20 runs x 12,600 rows, with macro F1 within 0.002 (scripts/bench_ensemble.py).
_STACK_TOL = 1e-3
# The solver's products are thin (rows x 18 members' columns by 18 classes): a second BLAS
# thread gains little, and where other processes share the cores OpenBLAS threads that wait on
# each other cost 5x (13.4 s against 2.7 s on 2 shared cores, scripts/bench_ensemble.py).
_BLAS_THREADS = 1


def stack_features(probs: Sequence[np.ndarray]) -> np.ndarray:
    """``(n, 18 * members)``: every member's log-probabilities side by side (float32: the
    solver's time is in matrix products, and halving their width costs no score)."""
    joined = np.concatenate([np.asarray(p, dtype=np.float32) for p in probs], axis=1)
    return np.log(np.clip(joined, _FLOOR, None))


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> Pipeline | int:
    """A fitted meta-model, or the one class when the rows hold only one."""
    classes = np.unique(y)
    if len(classes) == 1:
        return int(classes[0])
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = LogisticRegression(C=c, max_iter=200, tol=_STACK_TOL, random_state=seed)
    return make_pipeline(StandardScaler(), model).fit(x, y)


def _predict(model: Pipeline | int, x: np.ndarray) -> np.ndarray:
    """``(n, 18)`` probabilities; classes absent from the fitting rows get 0."""
    if isinstance(model, int):
        return np.eye(NUM_CLASSES)[np.full(len(x), model)]
    out = np.zeros((len(x), NUM_CLASSES))
    out[:, model.classes_] = model.predict_proba(x)
    return out


@dataclass
class Stacker:
    """A fitted stack: honest out-of-fold validation probabilities and the final meta-model."""

    oof: np.ndarray  # (n_val, 18), each fold predicted by a meta-model fitted without it
    model: Pipeline | int
    n_folds: int
    n_members: int

    def predict(self, probs: Sequence[np.ndarray]) -> np.ndarray:
        """``(n, 18)`` probabilities of new rows (the test set) from the members' probs."""
        if len(probs) != self.n_members:
            raise ValueError(f"stack fitted on {self.n_members} members, got {len(probs)}")
        with threadpool_limits(_BLAS_THREADS, user_api="blas"):
            return _predict(self.model, stack_features(probs))


def fit_stacker(
    probs: Sequence[np.ndarray],
    truth: Sequence[int] | np.ndarray,
    fold_ids: Sequence[int] | np.ndarray,
    *,
    c: float = STACK_C,
    seed: int = 0,
) -> Stacker:
    """Fit the meta-model on aligned validation ``probs`` (one ``(n, 18)`` array per member)
    and score it by cross-fitting over ``fold_ids``."""
    x, y, folds = stack_features(probs), np.asarray(truth, dtype=np.int64), np.asarray(fold_ids)
    if len(x) != len(y) or len(folds) != len(y):
        raise ValueError(
            f"stack: {len(x)} validation rows, {len(y)} labels and {len(folds)} fold ids; "
            "expected the same number"
        )
    oof = np.zeros((len(y), NUM_CLASSES))
    with threadpool_limits(_BLAS_THREADS, user_api="blas"):
        for k in np.unique(folds):
            held = folds == k
            oof[held] = _predict(_fit(x[~held], y[~held], c, seed), x[held])
        model = _fit(x, y, c, seed)
    return Stacker(oof, model, len(np.unique(folds)), len(probs))


def _needs_truth(*_: object) -> None:
    raise ValueError(
        "method 'stack' fits a meta-model on validation labels, so it cannot combine "
        "predictions alone; use kit.ensemble.ensemble(members, 'stack') or kit.ensemble.fit_stacker"
    )


METHODS.register("stack", Method("stack", True, _needs_truth, _needs_truth, False, fit=fit_stacker))
