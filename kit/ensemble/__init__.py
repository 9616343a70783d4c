"""Ensembling run folders and submissions: soft / weighted / geometric / rank / hard vote,
stacking, and per-class bias calibration for macro F1.

Read-only over run folders (see docs/run-folder.md); ties and weight search are described
in docs/ensembling.md.
"""

from kit.ensemble import stacking  # registers the "stack" method
from kit.ensemble.calibrate import (
    Calibration,
    apply_biases,
    calibrate,
    calibrate_ensemble,
    fit_biases,
    predict_with_biases,
)
from kit.ensemble.core import ensemble
from kit.ensemble.folds import HonestFolds, honest_folds
from kit.ensemble.inputs import Member, align, load_member
from kit.ensemble.methods import (
    METHODS,
    Method,
    argmax,
    combine,
    geometric_mean,
    hard_vote,
    rank_average,
    soft_vote,
)
from kit.ensemble.result import EnsembleResult, MemberScore, biases_path, write
from kit.ensemble.search import SearchResult, search_weights
from kit.ensemble.stacking import Stacker, fit_stacker
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
    "stacking",
    "write",
]
