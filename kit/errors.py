"""Which exceptions are kit's own errors about the user's input: every command ends them with
one ``error: <message>`` line and exit code 2 (:mod:`kit.cli`); anything else is a bug.

Each subclasses :class:`KitError` (``except kit.KitError`` in a notebook) *and* the built-in
type callers already catch::

    KitError
    ├── DataError (ValueError)          the dataset or a CSV the user gave (kit.data, kit.io)
    ├── ConfigError (ValueError)        a config value, file or flag (kit.config)
    ├── UnknownName (ValueError)        a name no registry entry has (kit.registry)
    ├── WeightsUnavailable (ValueError) pretrained weights neither cached nor downloadable
    ├── OutputError (OSError)           an output that cannot be written (kit.io)
    ├── UserCodeError (RuntimeError)    a piece the user registered failed (kit.registry)
    ├── NotReCreatable (ValueError)     a run's recorded transform cannot be rebuilt
    ├── BuildMismatch (ImportError)     torchvision cannot load beside this torch
    ├── RunBusyError (RuntimeError)     a run folder another live process is writing
    └── TrainingDiverged (FloatingPointError)  the loss became NaN or infinite

Messages about a malformed run folder file and a missing file are still plain ``ValueError`` /
``FileNotFoundError``; commands end those with one line as well (:data:`KIT_ERRORS`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = [
    "DEBUG_ENV",
    "KIT_ERRORS",
    "ConfigError",
    "DataError",
    "KitError",
    "RunBusyError",
    "TrainingDiverged",
    "UserCodeError",
    "debug_requested",
]


class KitError(Exception):
    """An error kit raises on purpose, naming the file, row or field and the fix; never a bug."""


class DataError(KitError, ValueError):
    """The dataset on disk, or a CSV the user gave (fixes, face boxes, a submission), is not
    what kit expects."""


class ConfigError(KitError, ValueError):
    """A config value, config file or ``KEY=VALUE`` flag kit cannot use."""


class UserCodeError(KitError, RuntimeError):
    """Code the user registered (a loss, head, model, ...) raised or returned the wrong thing;
    the user's own traceback is its ``__cause__`` (shown by ``--debug``)."""


class RunBusyError(KitError, RuntimeError):
    """A run folder is being written by a live process."""


class TrainingDiverged(KitError, FloatingPointError):
    """The training loss became NaN or infinite."""


#: What a command reports as one ``error:`` line; bugs (TypeError, KeyError, ...) keep their
#: traceback.
KIT_ERRORS: tuple[type[BaseException], ...] = (KitError, ValueError, OSError)


#: The environment variable that shows tracebacks of kit's errors, like ``--debug``.
DEBUG_ENV = "KIT_DEBUG"


def debug_requested(argv: Sequence[str]) -> bool:
    """Whether ``--debug`` is in ``argv`` or ``KIT_DEBUG`` is set (not 0/empty): show the
    traceback of kit's errors (and of Ctrl-C) instead of one line."""
    return "--debug" in argv or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")
