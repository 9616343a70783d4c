"""Ensembling run folders and submissions: soft / weighted / geometric / rank / hard vote.

Read-only over run folders (see docs/run-folder.md); ties and weight search are described
in docs/ensembling.md.
"""

from kit.ensemble.core import EnsembleResult, MemberScore, ensemble, write
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
from kit.ensemble.search import SearchResult, search_weights
from kit.runfolder import Split

__all__ = [
    "METHODS",
    "EnsembleResult",
    "Member",
    "MemberScore",
    "Method",
    "SearchResult",
    "Split",
    "align",
    "argmax",
    "combine",
    "ensemble",
    "geometric_mean",
    "hard_vote",
    "load_member",
    "rank_average",
    "search_weights",
    "soft_vote",
    "write",
]
