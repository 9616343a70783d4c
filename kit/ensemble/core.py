"""``ensemble(members, method, weights)``: combine run folders / submissions into an
:class:`~kit.ensemble.result.EnsembleResult` (``kit.ensemble.result.write`` writes it)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence

import numpy as np

from kit.ensemble.folds import member_folds
from kit.ensemble.inputs import Member, align, load_member
from kit.ensemble.methods import Method, argmax, combine, get_method, normalise_weights
from kit.ensemble.result import EnsembleResult, MemberScore
from kit.ensemble.search import SearchResult, search_weights
from kit.ensemble.tasks import merge_task_members
from kit.metrics import macro_f1, summarize
from kit.runfolder import TEST_PROBS, Split, read_submission

__all__ = ["ensemble"]

Weights = Sequence[float] | str | None


def _test(members: list[Member]) -> list[Split] | None:
    """Aligned test splits; None when no member has any; refuses differing rows."""
    splits = [m.test for m in members]
    if all(s is None for s in splits):
        return None
    lacking = [m.name for m in members if m.test is None]
    if lacking:
        raise ValueError(f"{lacking} have no test predictions ({TEST_PROBS}); others do")
    return align(splits, [m.name for m in members], "test")


def _validation(members: list[Member]) -> tuple[list[Split] | None, str | None]:
    """Aligned validation splits, or None and why: the vote on test can still go ahead."""
    lacking = [m.name for m in members if m.val is None]
    if lacking:
        return None, f"{lacking} have no validation predictions"
    try:
        return align([m.val for m in members], [m.name for m in members], "validation"), None
    except ValueError as err:  # e.g. runs with different splits: fine for test, no val score
        return None, str(err)


def _truth(members: list[Member], val: list[Split]) -> np.ndarray:
    truth = val[0].truth
    for m, s in zip(members[1:], val[1:], strict=True):
        differ = int(np.sum(s.truth != truth))
        if differ:
            warnings.warn(
                f"{m.name}: {differ} validation labels differ from {members[0].name} "
                "(label fixes?); scoring against the first member's labels",
                stacklevel=3,
            )
    return truth


def _weights(
    weights: Weights,
    method: str,
    members: list[Member],
    val: list[Split] | None,
    why: str | None,
    seed: int,
) -> tuple[np.ndarray, SearchResult | None]:
    if weights is None and method == "weighted":
        weights = "auto"
    if isinstance(weights, str):
        if weights != "auto":
            raise ValueError(
                f"weights must be None, 'auto' or one number per member; got {weights!r}"
            )
        if val is None:
            raise ValueError(
                f"cannot search weights: they are fitted on validation rows shared by every "
                f"member, but {why.rstrip('.')}. Give weights by hand (e.g. --weights 1,1) instead."
            )
        found = search_weights([s.probs for s in val], val[0].truth, method, seed=seed)
        return np.asarray(found.weights), found
    return normalise_weights(weights, len(members)), None


def _check_fitted(spec: Method, weights: Weights, val: list[Split] | None, why: str | None):
    if weights is not None:
        raise ValueError(
            f"method {spec.name!r} learns how much to trust each member; leave --weights out"
        )
    if val is None:
        raise ValueError(
            f"method {spec.name!r} fits a meta-model on validation rows shared by every member, "
            f"but {why.rstrip('.')}. Use members of the same split (or K-fold parents of the "
            "same folds), or another method."
        )


def _reorder_to_info(test: list[Split], info: str | os.PathLike[str]) -> list[Split]:
    order = read_submission(info)  # info.csv has the submission's columns
    ref = Split(order.ids, order.labels)
    return align([ref, *test], [f"{info}", *(str(s.source) for s in test)], "test")[1:]


def ensemble(
    members: Sequence[str | os.PathLike[str] | Member],
    method: str = "soft",
    weights: Weights = None,
    *,
    info: str | os.PathLike[str] | None = None,
    seed: int = 0,
) -> EnsembleResult:
    """Combine run folders, K-fold parents and submission CSVs with a registered method.

    ``weights``: None (equal; ``weighted`` then searches), ``"auto"`` (search on the shared
    validation rows) or one non-negative number per member. Test rows follow the first
    member's order, or ``info`` (an info.csv) when given; members whose test rows differ are
    refused. Validation rows are matched by ``image_id``; members whose validation rows differ
    (e.g. runs on different splits) still vote on test, but without an ensemble validation
    score (``val_note`` says why) and without weight search. Submission CSVs only join the
    ``hard`` vote. Per-task runs are first merged into one 18-way member (kit.ensemble.tasks).
    """
    loaded = merge_task_members([m if isinstance(m, Member) else load_member(m) for m in members])
    if not loaded:
        raise ValueError("no members given; expected at least one run folder or submission CSV")
    spec = get_method(method)
    csvs = [m.name for m in loaded if not m.has_probs]
    if spec.needs_probs and csvs:
        raise ValueError(
            f"method {method!r} needs probabilities, but {csvs} are submission CSVs "
            "(ImageID,ans: labels only). Use --method hard, or pass their run folders."
        )
    val, why = _validation(loaded)
    if spec.fit is not None:
        _check_fitted(spec, weights, val, why)
    w, found = _weights(weights, method, loaded, val, why, seed)
    result = EnsembleResult(method, w.tolist(), [], search=found, val_note=why)
    for m, wm in zip(loaded, w, strict=True):
        score = None if m.val is None else macro_f1(m.val.truth, m.val.labels)
        result.members.append(MemberScore(m.name, str(m.path), m.kind, score, float(wm)))
    fitted = None
    if val is not None:
        result.val_ids, result.val_truth = val[0].ids, _truth(loaded, val)
        if spec.fit is not None:
            folds = member_folds(loaded[0].path, val[0].ids)
            fitted = spec.fit([s.probs for s in val], result.val_truth, folds.ids, seed=seed)
            result.val_probs, result.val_labels = fitted.oof, argmax(fitted.oof)
            result.fitted = {"val_scores": "out-of-fold", "folds": folds.n_folds}
            result.fitted["folds_from"] = folds.source
        else:
            result.val_probs, result.val_labels = combine(
                method, [s.probs for s in val], [s.labels for s in val], w
            )
        result.val_scores = summarize(result.val_truth, result.val_labels)
    test = _test(loaded)
    if test is not None:
        if info is not None:
            test = _reorder_to_info(test, info)
        result.test_ids = test[0].ids
        if fitted is not None:
            result.test_probs = fitted.predict([s.probs for s in test])
            result.test_labels = argmax(result.test_probs)
        else:
            result.test_probs, result.test_labels = combine(
                method, [s.probs for s in test], [s.labels for s in test], w
            )
    return result
