"""Training: ``fit(cfg) -> Run`` (:mod:`kit.train.fit`) and what it wires together: one run
folder from start to end (``folder``), what a run starts from (``setup``), best.pt / last.pt
(``checkpoint``), the epoch and batch loops (``loop``), the forward pass over a frame
(``forward``), several processes and logging (``distributed``). docs/architecture.md maps them.
"""

from kit.runfolder import Run
from kit.train.distributed import is_main_process
from kit.train.fit import fit

__all__ = ["Run", "fit", "is_main_process"]
