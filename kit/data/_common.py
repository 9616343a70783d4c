"""What every data module shares: the error type, the layout's names, CSV and value parsing."""

from __future__ import annotations

import contextlib
import csv
import io
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from kit.errors import DataError
from kit.io import read_csv_text
from kit.labels import Gender, Mask, age_to_group, encode

__all__ = [
    "FRAME_COLUMNS",
    "GENDERS",
    "IMAGE_EXTENSIONS",
    "SHOWN",
    "STEMS",
    "STEM_MASK",
    "DataError",
    "data_root",
    "listed",
    "parse_age",
    "parse_gender",
    "pool_map",
    "read_csv_checked",
    "usable_cores",
    "with_labels",
]


#: The seven pictures of every person, in the order rows are sorted.
STEMS: tuple[str, ...] = (
    "mask1",
    "mask2",
    "mask3",
    "mask4",
    "mask5",
    "incorrect_mask",
    "normal",
)
STEM_MASK: dict[str, int] = {
    **{f"mask{i}": int(Mask.WEAR) for i in range(1, 6)},
    "incorrect_mask": int(Mask.INCORRECT),
    "normal": int(Mask.NOT_WEAR),
}
#: Extensions accepted in any letter case.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png")
GENDERS: dict[str, int] = {"male": int(Gender.MALE), "female": int(Gender.FEMALE)}
FRAME_COLUMNS: tuple[str, ...] = (
    "image_id",
    "path",
    "person_id",
    "folder",
    "stem",
    "gender",
    "race",
    "age",
    "mask",
    "age_group",
    "label",
)
_MAX_AGE = 120
#: How many problems a message lists before "... and N more".
SHOWN = 5


def listed(items: Sequence[str], sep: str) -> str:
    """The first :data:`SHOWN` of ``items`` joined by ``sep``, then ``... and N more``."""
    more = f"{sep}... and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return sep.join(items[:SHOWN]) + more


def with_labels(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with ``age_group`` and the 18-way ``label`` (re)computed from mask, gender, age."""
    df["age_group"] = age_to_group(df["age"].to_numpy())
    df["label"] = encode(df["mask"].to_numpy(), df["gender"].to_numpy(), df["age_group"].to_numpy())
    return df


def data_root(data_dir: str | os.PathLike[str]) -> Path:
    """The absolute data folder, or a DataError if it is missing."""
    root = Path(data_dir).expanduser().resolve()
    if not root.is_dir():
        raise DataError(
            f"{root}: data folder not found (expected a folder holding train/ and eval/)"
        )
    return root


def parse_gender(value: str) -> int:
    """``Gender`` of "male" / "female" (any case, spaces ignored); ValueError otherwise."""
    key = str(value).strip().lower()
    if key not in GENDERS:
        raise ValueError(f"found {value!r}, expected 'male' or 'female'")
    return GENDERS[key]


def parse_age(value: str) -> int:
    """Age in whole years 0..120 from its text; ValueError otherwise."""
    text = str(value).strip()
    if not text.isdigit() or not text.isascii():
        raise ValueError(f"found {value!r}, expected a whole number of years 0..{_MAX_AGE}")
    age = int(text)
    if age > _MAX_AGE:
        raise ValueError(f"found {age}, expected an age 0..{_MAX_AGE}")
    return age


def read_csv_checked(path: Path, required: tuple[str, ...]) -> pd.DataFrame:
    """A CSV in any encoding a spreadsheet writes (:func:`kit.io.read_csv_text`), checked to
    exist, parse and have the ``required`` columns; cells stay strings (ids keep leading
    zeros), blank lines are skipped, and the index holds each row's line number in the file."""
    expected = ",".join(required)
    if not path.is_file():
        raise DataError(f"{path}: file not found (expected a CSV with columns {expected})")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty (expected a header line {expected})")
    text, sep = read_csv_text(path)
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
        header = [c.strip() for c in next(reader)]
        rows, lines = [], []
        for row in reader:
            if not row:
                continue
            if len(row) != len(header):
                raise DataError(
                    f"{path} line {reader.line_num}: found {len(row)} fields, expected "
                    f"{len(header)} as in the header ({','.join(header)})"
                )
            rows.append(row)
            lines.append(reader.line_num)
    except (csv.Error, StopIteration) as err:
        raise DataError(f"{path}: cannot be parsed as CSV ({err})") from err
    doubled = sorted({c for c in header if header.count(c) > 1})
    if doubled:
        raise DataError(f"{path}: column(s) {', '.join(doubled)} appear twice in the header")
    missing = [c for c in required if c not in header]
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)}; found columns "
            f"{', '.join(header)}, expected {expected}"
        )
    return pd.DataFrame(rows, columns=header, index=pd.Index(lines, name="line"), dtype=str)


@contextlib.contextmanager
def pool_map(
    workers: int, executor: Callable[..., Executor] = ProcessPoolExecutor, **map_kwargs: Any
) -> Iterator[Callable[..., Iterator[Any]]]:
    """``map`` in this process when ``workers`` <= 0, else the ``map`` of an ``executor`` of
    ``workers`` (with ``map_kwargs``, e.g. ``chunksize``), shut down on leaving: results in
    input order either way."""
    if workers <= 0:
        yield map
        return
    with executor(max_workers=workers) as pool:
        yield partial(pool.map, **map_kwargs)


def usable_cores() -> int:
    """The CPU cores this process may run on (a container's share, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1
