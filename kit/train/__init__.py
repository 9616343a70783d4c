"""Training: ``fit(cfg) -> Run`` and the pieces it wires together."""

from kit.runfolder import Run
from kit.train.distributed import is_main_process
from kit.train.kfold import fit_folds
from kit.train.loop import fit

__all__ = ["Run", "fit", "fit_folds", "is_main_process"]
