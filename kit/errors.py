"""The one place that says which exceptions are kit's own errors about the user's input.

Every command (``python -m kit.*``, a recipe through ``kit.main``) ends such an error with one
``error: <message>`` line and exit code 2; anything else is a bug in kit and keeps its
traceback (:mod:`kit.cli`). kit's messages about bad values and files are ``ValueError``
(``kit.data.DataError``, ``kit.registry.UnknownName`` and the config checks subclass it) and
``OSError`` (``kit.io.OutputError``, missing files); errors of other kinds that kit raises on
purpose (a run folder another process is writing, a diverged loss) subclass :class:`KitError`
as well as the built-in type their callers already catch.
"""

from __future__ import annotations

__all__ = ["KIT_ERRORS", "KitError", "RunBusyError", "TrainingDiverged"]


class KitError(Exception):
    """An error kit raises on purpose, with a message that names the file, row or field and
    the fix; never a bug."""


class RunBusyError(KitError, RuntimeError):
    """A run folder is being written by a live process."""


class TrainingDiverged(KitError, FloatingPointError):
    """The training loss became NaN or infinite."""


#: What a command reports as one ``error:`` line: bugs (TypeError, KeyError, AssertionError,
#: RuntimeError from a library, ...) are not in it and keep their traceback.
KIT_ERRORS: tuple[type[BaseException], ...] = (KitError, ValueError, OSError)
