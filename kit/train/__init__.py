"""Training: ``fit(cfg) -> Run`` and the pieces it wires together.

``fit`` (:mod:`kit.train.fit`) drives one run or a K-fold; :mod:`kit.train.loop` holds the epoch
and batch loops; :mod:`kit.train.ready` what is checked before a run folder is written;
:mod:`kit.train.optim` the loss, optimizer and scheduler; :mod:`kit.train.data`
the split, the picture cache and the loaders; :mod:`kit.train.checkpoint` best.pt, last.pt and
resuming; :mod:`kit.train.distributed` the process: device, logging, several processes.
"""

from kit.runfolder import Run
from kit.train.distributed import is_main_process
from kit.train.fit import fit

__all__ = ["Run", "fit", "is_main_process"]
