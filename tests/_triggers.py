"""How a trigger of docs/troubleshooting.md returns the text a user sees: an exception's
message, the warnings, the ``kit`` logger's warnings or a command's output (shared by
tests/test_troubleshooting.py and the trigger modules it draws on)."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Callable

__all__ = ["logged", "printed", "raised", "warned"]


def raised(fn: Callable[[], object], *types: type[BaseException]) -> str:
    """The message of the exception ``fn`` raises (one of ``types``; any Exception if none)."""
    expected = types or (Exception,)
    try:
        fn()
    except expected as err:
        return str(err)
    raise AssertionError("no error was raised")


def warned(fn: Callable[[], object]) -> str:
    """Every warning ``fn`` emits, one per line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fn()
    return "\n".join(str(w.message) for w in caught)


def logged(fn: Callable[[], object]) -> str:
    """The ``kit`` logger's warnings while ``fn`` runs (its exceptions are swallowed)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.WARNING)
    log = logging.getLogger("kit")
    log.addHandler(handler)
    try:
        with contextlib.suppress(Exception, SystemExit):
            fn()
    finally:
        log.removeHandler(handler)
    return stream.getvalue()


def printed(main: Callable[[list[str]], object], argv: list[str]) -> str:
    """What a command prints on stdout and stderr (an argparse exit is fine)."""
    out = io.StringIO()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(out),
        contextlib.suppress(SystemExit),
    ):
        main(argv)
    return out.getvalue()
