"""The run folder, kit's contract between training and everything after it (docs/run-folder.md).

Every file name, column list, writer and reader of a run folder lives in this package:
:mod:`kit.runfolder.names` spells the files and columns; training writes through
:mod:`kit.runfolder.files` and :mod:`kit.runfolder.kfold` (a K-fold parent's merged files); the
ensembler, the ledger and the scorer read through :mod:`kit.runfolder.read` (records, epochs,
predictions, :class:`Run`) and :mod:`kit.runfolder.predictions` (the checked CSV readers).
"""

# Each module lists its public names once, in its own __all__; the package re-exports them all.
from kit.runfolder import (
    code,
    files,
    kfold,
    names,
    oof,
    predictions,
    pseudo,
    read,
    resume,
    source,
    tasks,
    tracking,
    transform,
)
from kit.runfolder.code import *  # noqa: F403
from kit.runfolder.files import *  # noqa: F403
from kit.runfolder.kfold import *  # noqa: F403
from kit.runfolder.names import *  # noqa: F403
from kit.runfolder.oof import *  # noqa: F403
from kit.runfolder.predictions import *  # noqa: F403
from kit.runfolder.pseudo import *  # noqa: F403
from kit.runfolder.read import *  # noqa: F403
from kit.runfolder.resume import *  # noqa: F403
from kit.runfolder.source import *  # noqa: F403
from kit.runfolder.tasks import *  # noqa: F403
from kit.runfolder.tracking import *  # noqa: F403
from kit.runfolder.transform import *  # noqa: F403

_MODULES = (
    code,
    files,
    kfold,
    names,
    oof,
    predictions,
    pseudo,
    read,
    resume,
    source,
    tasks,
    tracking,
    transform,
)
__all__ = sorted(name for module in _MODULES for name in module.__all__)
