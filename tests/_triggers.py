"""docs/troubleshooting.md's rows and the text a user sees: :func:`assert_documented` checks a
row's message excerpt is in what a test saw, in the test of the module that produces the message;
:func:`raised`, :func:`warned`, :func:`logged` and :func:`printed` return that text: an
exception's message, the warnings, the ``kit`` logger's warnings or a command's output."""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import re
import warnings
from collections.abc import Callable
from pathlib import Path

__all__ = ["PAGE", "assert_documented", "documented", "logged", "printed", "raised", "warned"]

PAGE = Path(__file__).resolve().parents[1] / "docs" / "troubleshooting.md"
_ROW = re.compile(r"^\|\s*`(?P<id>[a-z0-9-]+)`\s*\|\s*`(?P<excerpt>[^`]+)`\s*\|")


@functools.cache
def _rows() -> dict[str, str]:
    rows: dict[str, str] = {}
    text = PAGE.read_text(encoding="utf-8") if PAGE.is_file() else ""
    for line in text.splitlines():
        match = _ROW.match(line)
        if match:
            assert match["id"] not in rows, f"id {match['id']} appears twice in {PAGE.name}"
            rows[match["id"]] = match["excerpt"].replace("\\|", "|")
    return rows


def documented() -> dict[str, str]:
    """id -> message excerpt, for every table row of the page."""
    return dict(_rows())


def assert_documented(row: str, seen: str) -> None:
    """The page's row ``row`` shows what the user saw: its excerpt is in ``seen`` (spacing
    aside). Call it where a test provokes the message; tests/test_troubleshooting.py checks
    every row of the page is claimed by such a call."""
    rows = _rows()
    assert row in rows, f"no row `{row}` in {PAGE.name}"
    excerpt = " ".join(rows[row].split())
    assert excerpt in " ".join(seen.split()), f"{row}: {excerpt!r} not in:\n{seen}"


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
