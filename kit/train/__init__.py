"""Training: ``fit(cfg) -> Run`` and the pieces it wires together.

``fit`` (:mod:`kit.train.fit`) drives one run or a K-fold; :mod:`kit.train.folder` one run
folder from start to end; :mod:`kit.train.setup` what a run starts from (checks, the Job, the
Trainer, a resumed last.pt); :mod:`kit.train.checkpoint` best.pt / last.pt;
:mod:`kit.train.loop` the epoch loop (the run's and its refit's) and the batch loop;
:mod:`kit.train.forward` the forward pass over a frame (validation's and inference's);
:mod:`kit.train.setup` the run's pictures and training dataset; :mod:`kit.train.distributed`
several processes and logging. The loss, the optimizer and the scheduler they use are lower
building blocks (:mod:`kit.losses`, :mod:`kit.optim`).
"""

from kit.runfolder import Run
from kit.train.distributed import is_main_process
from kit.train.fit import fit

__all__ = ["Run", "fit", "is_main_process"]
