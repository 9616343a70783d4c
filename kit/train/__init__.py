"""Training: ``fit(cfg) -> Run`` and the pieces it wires together.

``fit`` (:mod:`kit.train.fit`) drives one run or a K-fold; :mod:`kit.train.run` one run folder
from start to end; :mod:`kit.train.checkpoint` what a run starts from (checks, the Trainer, a
resumed last.pt) and best.pt / last.pt; :mod:`kit.train.loop` the epoch and batch loops;
:mod:`kit.train.data` the split, the picture cache and the loaders;
:mod:`kit.train.distributed` several processes and logging. The loss, the optimizer and the
scheduler they use are lower building blocks (:mod:`kit.losses`, :mod:`kit.optim`).
"""

from kit.runfolder import Run
from kit.train.distributed import is_main_process
from kit.train.fit import fit

__all__ = ["Run", "fit", "is_main_process"]
