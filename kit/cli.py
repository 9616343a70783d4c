"""How every kit command ends (:func:`run_cli`): kit's own errors as one ``error:`` line and
exit code 2 (``--debug`` or ``KIT_DEBUG=1``: the traceback), warnings as one ``warning:`` line
each, Ctrl-C and SIGTERM with 130 and 143, a closed pipe (``... | head``) quietly; a bug keeps
its traceback. In the lowest layer, so every entry point can use it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import NoReturn

from kit.errors import DEBUG_ENV, KIT_ERRORS, debug_requested
from kit.io import OUTPUT_FIX, OutputError

__all__ = [
    "INTERRUPTED",
    "TERMINATED",
    "ArgumentParser",
    "Terminated",
    "add_debug_flag",
    "error_text",
    "run_cli",
    "signals_held",
    "warnings_as_lines",
]

#: Exit codes a shell sees for Ctrl-C, a closed pipe and SIGTERM (128 + signal number).
INTERRUPTED, BROKEN_PIPE, TERMINATED = 130, 141, 143


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, ending a bad command line like every other kit error: the usage,
    then one line ``error: <message>``, exit code 2 (argparse writes ``PROG: error:``)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--debug`` (show the traceback of kit's errors) to a command's parser."""
    parser.add_argument(
        "--debug",
        action="store_true",
        help=f"show the Python traceback of an error instead of one line (also {DEBUG_ENV}=1)",
    )


def error_text(err: BaseException) -> str:
    """The message of ``err`` without Python's ``[Errno N]`` prefix; the file named when known."""
    if isinstance(err, OSError) and err.strerror:
        if isinstance(err, OutputError) or not err.filename:
            return err.strerror
        return f"{err.filename}: {err.strerror}"
    return str(err) or type(err).__name__


@contextlib.contextmanager
def warnings_as_lines() -> Iterator[None]:
    """Show each warning raised inside as one ``warning: <message>`` line on stderr, at once."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        print(f"warning: {message}", file=sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C (:func:`sigterm_as_interrupt`) so the same clean-up runs."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM raises :class:`Terminated` in the main thread, so ``kill``, ``timeout``
    and job schedulers stop a run the way Ctrl-C does; off the main thread nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum, frame) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Inside, SIGINT and SIGTERM wait, then the first that came goes to the handler of before.
    For writes C++ drives through Python callbacks (``torch.save`` into an open file): an
    interrupt inside one comes out as torch's RuntimeError ("file write failed"), which reads as
    a failed run instead of an interrupted one. Off the main thread nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[tuple[int, object]] = []
    previous = {
        signum: signal.signal(signum, lambda n, frame: came.append((n, frame)))
        for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum, frame in came[:1]:  # the first: its handler raises, as it would have
            handler = previous[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(signum)


def run_cli(
    main: Callable[[list[str]], int | None],
    argv: Sequence[str] | None = None,
    *,
    output_fix: str | None = None,
) -> int:
    """Run ``main(argv)`` (``sys.argv[1:]`` when None) and return the process's exit code.

    ``output_fix``: the command's own way out of an unwritable output (``"pass another -o
    PATH"``); it replaces the generic hint of an :class:`~kit.io.OutputError` (not one whose
    writer knew better), so the fix a message suggests is a flag this command has.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        with warnings_as_lines(), sigterm_as_interrupt():
            code = int(main(args) or 0)
        sys.stdout.flush()  # inside the try: a reader that went away ends quietly too
        return code
    except KIT_ERRORS as err:
        if isinstance(err, BrokenPipeError):
            # stdout to /dev/null: Python's flush at exit cannot fail on the closed pipe; stdout
            # replaced by an object without a descriptor raises ValueError
            with contextlib.suppress(OSError, ValueError):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return BROKEN_PIPE
        if debug_requested(args):
            raise
        if isinstance(err, OutputError) and output_fix and err.fix == OUTPUT_FIX:
            err = err.with_fix(output_fix)
        print(f"error: {error_text(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        print("terminated" if isinstance(err, Terminated) else "interrupted", file=sys.stderr)
        return TERMINATED if isinstance(err, Terminated) else INTERRUPTED
    except SystemExit as err:  # fit() ends an interrupted run with the usual exit code
        if err.code in (INTERRUPTED, TERMINATED):
            return int(err.code)
        raise
