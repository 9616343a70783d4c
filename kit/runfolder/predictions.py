"""The checked prediction files of a run folder (docs/run-folder.md): val_probs.csv,
test_probs.csv and submission CSVs, each read into a :class:`Split`.

Every error names the file, the line and the field, what was found and what was expected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from kit.io import csv_source
from kit.labels import NUM_CLASSES
from kit.runfolder.names import (
    PROB_COLUMNS,
    SUBMISSION_COLUMNS,
    TEST_COLUMNS,
    TEST_KEYS,
    VAL_COLUMNS,
)

__all__ = [
    "Split",
    "checked_class_ids",
    "checked_numbers",
    "checked_probs",
    "read_checked_csv",
    "read_submission",
    "read_test_probs",
    "read_val_probs",
]
# CSV round-trips lose a little precision; a row off by more than this is not probabilities.
_SUM_TOL = 1e-3


@dataclass
class Split:
    """One side (validation or test) of a member, rows keyed by ``ids``."""

    ids: np.ndarray
    labels: np.ndarray  # predicted class per row
    probs: np.ndarray | None = None  # (n, 18); None for a submission CSV
    truth: np.ndarray | None = None  # true class per row (validation only)
    source: Path | None = None

    def take(self, order: np.ndarray) -> Split:
        """The same split with rows in ``order`` (positions)."""

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[order]

        return replace(
            self,
            ids=self.ids[order],
            labels=self.labels[order],
            probs=pick(self.probs),
            truth=pick(self.truth),
        )


def read_checked_csv(path: Path, columns: Sequence[str], id_columns: Sequence[str]) -> pd.DataFrame:
    """A prediction CSV with ``columns`` present, at least one row and ``id_columns`` read as
    text, non-empty (and unique for image ids); ValueError naming the file and line otherwise."""
    try:
        source = csv_source(path)
        df = pd.read_csv(**source, dtype={c: str for c in id_columns}, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise ValueError(f"{path}: not a readable CSV ({err})") from err
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; found {list(df.columns)}, "
            f"expected {', '.join(columns[:5])}{', ...' if len(columns) > 5 else ''}"
        )
    if len(df) == 0:
        raise ValueError(f"{path}: no rows; expected one row per image")
    for c in id_columns:
        _check_ids(path, df, c)
    return df


def _check_ids(path: Path, df: pd.DataFrame, col: str) -> None:
    empty = df[col].str.strip() == ""
    if empty.any():
        i = int(np.flatnonzero(empty.to_numpy())[0])
        raise ValueError(f"{path}: line {i + 2}, field {col}: empty; expected an image id")
    dup = df[col].duplicated()
    if dup.any() and col in ("image_id", "ImageID"):
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise ValueError(
            f"{path}: line {i + 2}, field {col}: {df[col].iat[i]!r} appears more than once; "
            "expected each image once"
        )


def _cell(value: object) -> str:
    """A cell as the file shows it: ``18``, ``2.5``, ``nan``, or quoted text (``''``)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def checked_numbers(path: Path, df: pd.DataFrame, cols: Sequence[str]) -> np.ndarray:
    """Columns as float64, naming the first cell that is empty, NaN or not a number."""
    values = df[list(cols)].apply(pd.to_numeric, errors="coerce").to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        i, j = (int(k[0]) for k in np.nonzero(bad))
        raw = _cell(df[cols[j]].iat[i])
        raise ValueError(f"{path}: line {i + 2}, field {cols[j]}: found {raw}; expected a number")
    return values


def checked_class_ids(path: Path, df: pd.DataFrame, col: str) -> np.ndarray:
    """Column ``col`` as class ids 0..17, naming the first cell that is not one."""
    values = checked_numbers(path, df, [col])[:, 0]
    bad = (values != np.round(values)) | (values < 0) | (values >= NUM_CLASSES)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{path}: line {i + 2}, field {col}: found {_cell(df[col].iat[i])}; "
            f"expected a class id 0..{NUM_CLASSES - 1}"
        )
    return values.astype(np.int64)


def checked_probs(
    path: Path, df: pd.DataFrame, columns: Sequence[str] = PROB_COLUMNS
) -> np.ndarray:
    """``columns`` as probabilities: each in 0..1, each row summing to 1 (within CSV rounding)."""
    p = checked_numbers(path, df, columns)
    bad = (p < 0) | (p > 1 + _SUM_TOL)
    if bad.any():
        i, j = (int(k[0]) for k in np.nonzero(bad))
        raise ValueError(
            f"{path}: line {i + 2}, field {columns[j]}: found {p[i, j]}; expected 0..1"
        )
    sums = p.sum(axis=1)
    off = np.abs(sums - 1) > _SUM_TOL
    if off.any():
        i = int(np.flatnonzero(off)[0])
        raise ValueError(
            f"{path}: line {i + 2}, fields {columns[0]}..{columns[-1]}: sum to {sums[i]:.6f}; "
            "expected probabilities summing to 1"
        )
    return p


def read_val_probs(path: str | Path) -> Split:
    """Validation / out-of-fold probabilities: ``image_id,person_id,label,fold,p0..p17``."""
    path = Path(path)
    df = read_checked_csv(path, VAL_COLUMNS, ["image_id", "person_id"])
    probs = checked_probs(path, df)
    ids = df["image_id"].to_numpy(object)
    truth = checked_class_ids(path, df, "label")
    return Split(ids, probs.argmax(axis=1), probs, truth, path)


def read_test_probs(path: str | Path) -> Split:
    """Test probabilities: ``image_id,p0..p17`` in info.csv order."""
    path = Path(path)
    (image_id,) = TEST_KEYS
    df = read_checked_csv(path, TEST_COLUMNS, [image_id])
    probs = checked_probs(path, df)
    return Split(df[image_id].to_numpy(object), probs.argmax(axis=1), probs, None, path)


def read_submission(path: str | Path) -> Split:
    """A submission CSV (``ImageID,ans``): test labels, no probabilities."""
    path = Path(path)
    image_id, ans = SUBMISSION_COLUMNS
    df = read_checked_csv(path, SUBMISSION_COLUMNS, [image_id])
    return Split(df[image_id].to_numpy(object), checked_class_ids(path, df, ans), None, None, path)
