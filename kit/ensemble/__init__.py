"""Ensembling run folders and submissions: soft / weighted / geometric / rank / hard vote,
stacking, and per-class bias calibration for macro F1.

Read-only over run folders (see docs/run-folder.md); ties and weight search are described
in docs/ensembling.md. Its modules: ``inputs`` (members, aligned rows, per-task merge, honest
folds), ``methods`` (the ensemblers and their registry), ``search`` (weight search, bias
calibration), ``core`` (``ensemble``, ``calibrate_ensemble``, ``write``).
"""

from kit.ensemble.core import (
    EnsembleResult,
    MemberScore,
    biases_path,
    calibrate_ensemble,
    ensemble,
    write,
)
from kit.ensemble.inputs import HonestFolds, Member, align, honest_folds, load_member
from kit.ensemble.methods import (
    METHODS,
    Method,
    Stacker,
    argmax,
    combine,
    fit_stacker,
    geometric_mean,
    hard_vote,
    rank_average,
    soft_vote,
)
from kit.ensemble.search import (
    Calibration,
    SearchResult,
    apply_biases,
    calibrate,
    fit_biases,
    predict_with_biases,
    search_weights,
)
from kit.runfolder import Split

__all__ = [
    "METHODS",
    "Calibration",
    "EnsembleResult",
    "HonestFolds",
    "Member",
    "MemberScore",
    "Method",
    "SearchResult",
    "Split",
    "Stacker",
    "align",
    "apply_biases",
    "argmax",
    "biases_path",
    "calibrate",
    "calibrate_ensemble",
    "combine",
    "ensemble",
    "fit_biases",
    "fit_stacker",
    "geometric_mean",
    "hard_vote",
    "honest_folds",
    "load_member",
    "predict_with_biases",
    "rank_average",
    "search_weights",
    "soft_vote",
    "write",
]
