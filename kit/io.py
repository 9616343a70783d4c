"""Atomic file writes: a kill at any moment leaves the old file or the new one, never half of one.

Every file kit writes goes through here, and every CSV kit reads is decoded here
(:func:`read_csv_text`), accepting what spreadsheets write: a byte-order mark, UTF-16, CRLF, ``;``
or tab separators, and with ``;`` the decimal comma (German, French Excel: ``0,5``).
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from kit.errors import DataError, KitError

__all__ = [
    "OUTPUT_FIX",
    "OutputError",
    "atomic_path",
    "atomic_write",
    "csv_number",
    "csv_source",
    "decimal_mark",
    "output_error",
    "read_csv_text",
    "read_json",
    "write_json",
    "write_text",
]


_UMASK = os.umask(0o022)
os.umask(_UMASK)
_DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


#: What an :class:`OutputError` suggests unless the command that writes knows its own flag.
OUTPUT_FIX = "choose another output folder or free space"


class OutputError(KitError, OSError):
    """An output file could not be written (read-only folder, disk full, ...). ``path``,
    ``reason`` and ``fix`` make up the message; a command replaces the generic fix with its own
    output flag (:meth:`with_fix`)."""

    def __init__(
        self,
        errno_: int,
        message: str,
        *,
        path: Path | None = None,
        reason: str = "",
        fix: str = "",
    ) -> None:
        super().__init__(errno_, message)
        self.path, self.reason, self.fix = path, reason, fix

    def with_fix(self, fix: str) -> OutputError:
        """The same error suggesting ``fix`` (e.g. ``"pass another -o PATH"``) instead."""
        if self.path is None:  # a message built by hand keeps its own advice
            return self
        return output_error(self.path, self, fix, self.reason)


def output_error(
    path: str | os.PathLike[str], err: OSError, fix: str = OUTPUT_FIX, reason: str = ""
) -> OutputError:
    """``err`` (raised while creating or writing ``path``) as an :class:`OutputError` that says
    why in plain words (or ``reason``) and what to do: ``fix``, the caller's own option."""
    reason = reason or {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exhausted",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.EEXIST: "a file is in the way where a folder is expected",
        errno.ENOTDIR: "a file is in the way where a folder is expected",
    }.get(err.errno or 0, err.strerror or str(err))
    path = Path(path)
    message = f"cannot write {path}: {reason}. Nothing was replaced; {fix}."
    return OutputError(err.errno or 0, message, path=path, reason=reason, fix=fix)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only on success."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        # mkstemp makes owner-only files; give the result the permissions a plain open() would.
        os.chmod(tmp_name, 0o666 & ~_UMASK)
    except OSError as err:
        raise output_error(target, err) from err
    tmp = Path(tmp_name)
    try:
        yield tmp
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        # Only out-of-space / read-only errors are about the output; others (an unreadable
        # input, say) belong to the caller and keep their own message.
        if isinstance(err, OSError) and err.errno in _DISK_ERRORS:
            raise output_error(target, err) from err
        raise
    try:
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise output_error(target, err) from err


def atomic_write(
    path: str | os.PathLike[str], writer: Callable[[IO[Any]], None], mode: str = "w"
) -> Path:
    """Call ``writer(file_handle)`` on a temporary file, then rename it onto ``path``."""
    with (
        atomic_path(path) as tmp,
        open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh,
    ):
        writer(fh)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write ``text`` to ``path``."""
    return atomic_write(path, lambda fh: fh.write(text))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (numpy scalars and paths become plain values)."""
    return write_text(
        path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    )


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file, naming the file in any error."""
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{p}: file not found") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{p}: not valid JSON ({err})") from err


def _json_default(obj: Any) -> Any:
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if hasattr(obj, "tolist"):  # numpy and torch, arrays and scalars
        return obj.tolist()
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


#: Byte-order marks and the encoding each announces; UTF-32 first (its LE mark begins with
#: UTF-16's).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
#: Separators a spreadsheet writes: ``,``; ``;`` where the comma is the decimal mark; tab.
_SEPARATORS = (",", ";", "\t")
_CSV_FIX = 'save it as "CSV UTF-8" (Excel: File > Save As > CSV UTF-8 (Comma delimited))'


def read_csv_text(path: str | os.PathLike[str]) -> tuple[str, str]:
    """``(text, separator)`` of a CSV file as spreadsheets and editors save it: the encoding
    follows the byte-order mark (none: UTF-8), the separator is whichever of ``,`` ``;`` tab the
    header line holds most (``,`` on a tie). Other bytes: a :class:`~kit.errors.DataError`."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError as err:
        raise FileNotFoundError(f"{p}: file not found") from err
    encoding = next((enc for bom, enc in _BOMS if raw.startswith(bom)), "utf-8")
    if encoding == "utf-8" and b"\x00" in raw[:4096]:
        raise DataError(
            f"{p}: holds NUL bytes, as UTF-16 text without a byte-order mark does; {_CSV_FIX}"
        )
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise DataError(
            f"{p} line {line}: byte {raw[err.start : err.start + 1]!r} is not {encoding.upper()} "
            f"text (a file saved in a legacy code page such as Windows-1252?); {_CSV_FIX}"
        ) from None
    text = text.removeprefix("\ufeff")
    header = next((line for line in text.splitlines() if line.strip()), "")
    counts = [header.count(sep) for sep in _SEPARATORS]
    return text, _SEPARATORS[counts.index(max(counts))] if max(counts) else ","


#: A whole ``;``-separated field that is a number with a decimal comma (``-0,25``, ``1,5e-3``).
_DECIMAL_COMMA = re.compile(r"(?:^|;)[ \t]*[-+]?\d+,\d+(?:[eE][-+]?\d+)?[ \t]*\r?(?=;|$)", re.M)


def decimal_mark(text: str, sep: str) -> str:
    """The decimal mark of a CSV's ``text`` separated by ``sep``: ``,`` when the separator is
    ``;`` and a field is a number written with a comma, else ``.``."""
    return "," if sep == ";" and _DECIMAL_COMMA.search(text) else "."


def csv_number(cell: str, decimal: str = ".") -> float:
    """``float`` of a CSV cell whose decimal mark is ``decimal`` (:func:`decimal_mark`);
    ValueError as ``float``'s for text that is no number."""
    return float(cell.replace(",", ".") if decimal == "," else cell)


def csv_source(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The arguments that make ``pandas.read_csv(**csv_source(path), ...)`` read ``path`` as
    :func:`read_csv_text` decodes it, with its :func:`decimal_mark`."""
    text, sep = read_csv_text(path)
    return {"filepath_or_buffer": io.StringIO(text), "sep": sep, "decimal": decimal_mark(text, sep)}
