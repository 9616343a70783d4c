"""Training: ``fit(cfg) -> Run`` and the pieces it wires together."""

from kit.train.kfold import KFoldRun, fit_folds
from kit.train.loop import Run, fit

__all__ = ["KFoldRun", "Run", "fit", "fit_folds"]
