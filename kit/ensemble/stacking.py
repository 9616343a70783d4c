"""Stacking: a regularised logistic regression on the members' out-of-fold log-probabilities.

The meta-model learns which member to trust for which class (and corrects classes a member
confuses), from the members' validation rows and their true labels. Its own validation score
is honest: each fold's rows are predicted by a meta-model fitted on the other folds (the
``fold`` column of K-fold parents, or person-grouped folds), so with K-fold members the
rows are out-of-fold twice over. The test rows are predicted by a meta-model fitted on every
validation row. Registered as the ensemble method ``stack``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from threadpoolctl import threadpool_limits

from kit.ensemble.methods import METHODS, Method
from kit.labels import NUM_CLASSES

if TYPE_CHECKING:  # scikit-learn loads with the first stacker: `python -m kit.ensemble --help`
    # and the other methods answer without it
    from sklearn.pipeline import Pipeline

__all__ = ["STACK_C", "Stacker", "fit_stacker", "stack_features"]

#: Inverse regularisation strength of the meta-model (scikit-learn's ``C``).
STACK_C = 1.0
# Floor before the log: a member's 1e-30 carries no more information than 1e-6, and
# bounded features keep the solver quick.
_FLOOR = 1e-6
# Solver tolerance: 1e-3 stops after about half the iterations of scikit-learn's 1e-4 default
# at 20 runs x 12,600 rows, with macro F1 within 0.002 (scripts/bench_ensemble.py).
_TOL = 1e-3
# The solver's products are thin (rows x 18 members' columns by 18 classes): a second BLAS
# thread gains little, and where other processes share the cores OpenBLAS threads that wait on
# each other cost 5x (13.4 s against 2.7 s on 2 shared cores, scripts/bench_ensemble.py).
_BLAS_THREADS = 1


def stack_features(probs: Sequence[np.ndarray]) -> np.ndarray:
    """``(n, 18 * members)``: every member's log-probabilities side by side (float32: the
    solver's time is in matrix products, and halving their width costs no score)."""
    joined = np.concatenate([np.asarray(p, dtype=np.float32) for p in probs], axis=1)
    return np.log(np.clip(joined, _FLOOR, None))


def _model(c: float, seed: int) -> Pipeline:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(
        StandardScaler(), LogisticRegression(C=c, max_iter=200, tol=_TOL, random_state=seed)
    )


def _probs18(model: Pipeline, x: np.ndarray) -> np.ndarray:
    """``(n, 18)`` probabilities; classes absent from the fitting rows get 0."""
    out = np.zeros((len(x), NUM_CLASSES))
    out[:, model.classes_] = model.predict_proba(x)
    return out


def _fit(x: np.ndarray, y: np.ndarray, c: float, seed: int) -> Pipeline | int:
    """A fitted meta-model, or the one class when the rows hold only one."""
    classes = np.unique(y)
    return int(classes[0]) if len(classes) == 1 else _model(c, seed).fit(x, y)


def _predict(model: Pipeline | int, x: np.ndarray) -> np.ndarray:
    if isinstance(model, int):
        return np.eye(NUM_CLASSES)[np.full(len(x), model)]
    return _probs18(model, x)


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
