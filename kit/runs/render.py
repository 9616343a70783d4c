"""Plain-text and GitHub-markdown renderings of a ledger table."""

from __future__ import annotations

import math
import textwrap
from typing import Any

import pandas as pd

from kit.runs.compare import is_score

__all__ = ["DROP_FIRST", "SHORT_HEADERS", "cell", "csv_text", "to_markdown", "to_text"]


def cell(value: Any, score: bool = False) -> str:
    """A table cell: scores to 4 decimals, other numbers as short as exact, missing as ``-``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}" if score else f"{value:g}"
    return str(value)


def _cells(df: pd.DataFrame) -> list[list[str]]:
    scores = [is_score(str(c)) for c in df.columns]
    return [
        [cell(v, s) for v, s in zip(row, scores, strict=True)] for row in df.itertuples(index=False)
    ]


#: Shorter headers of the plain-text table (``--markdown`` and ``--csv`` keep the full names).
SHORT_HEADERS = {
    "val_macro_f1": "f1",
    "val_f1_mask": "mask",
    "val_f1_gender": "gender",
    "val_f1_age": "age",
    "val_accuracy": "acc",
    "best_epoch": "epoch",
}
#: Columns a width-limited table drops first, in this order; config fields come next (the
#: rightmost first), then the per-head scores. name, status, F1, changes and flag always stay;
#: the seeds' spread and the noise verdict go only once ``changes`` is cut (:data:`_DROP_CUT`).
DROP_FIRST = ("date", "who", "val_accuracy", "parent", "best_epoch", "pair", "noise")
_DROP_LAST = ("val_f1_age", "val_f1_gender", "val_f1_mask")
#: After the columns above, with ``changes`` cut, these go in this order: the verdict last.
_DROP_CUT = ("interval", "n", "f1_sd", "verdict")
_KEEP = ("name", "status", "val_macro_f1", "changes", "flag")
_MIN_CELL = 24  # long cells (changes, JSON values) are cut to this before columns go


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _layout(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _fits(df: pd.DataFrame, width: int) -> tuple[pd.DataFrame, list[list[str]], list[str]]:
    """The columns and cells that fit ``width`` characters, and the columns left out.

    Columns go one by one in :data:`DROP_FIRST` order; before each goes, long cells are tried
    cut. ``changes`` is cut only when no column is left to go, and only then do the seeds'
    spread and the verdict go (:data:`_DROP_CUT`); a run's name, status and flag are never cut
    (they are what a reader copies and looks for).
    """
    columns = [str(c) for c in df.columns]
    header = [SHORT_HEADERS.get(c, c) for c in columns]
    rows = _cells(df)

    def cut(spared: tuple[str, ...]) -> list[list[str]]:
        keep = [c in spared for c in columns]
        return [
            [x if k else _shorten(x, _MIN_CELL) for x, k in zip(r, keep, strict=True)] for r in rows
        ]

    fields = [
        c for c in reversed(columns) if c not in (*_KEEP, *DROP_FIRST, *_DROP_LAST, *_DROP_CUT)
    ]
    first = [c for c in (*DROP_FIRST, *fields, *_DROP_LAST) if c in columns]
    order = [*first, *(c for c in _DROP_CUT if c in columns)]
    whole = ("name", "status", "flag", "interval", "verdict")
    for variants, drops in (((rows, cut((*whole, "changes"))), len(first)), ((cut(whole),), None)):
        for k in range(len(order[:drops]) + 1):
            keep = [i for i, c in enumerate(columns) if c not in order[:k]]
            for cells in variants:
                picked = [[r[i] for i in keep] for r in cells]
                if max(map(len, _layout([header[i] for i in keep], picked))) <= width:
                    return df[[columns[i] for i in keep]], picked, order[:k]
    return df[[columns[i] for i in keep]], picked, order


def to_text(df: pd.DataFrame, width: int | None = None) -> str:
    """Fixed-width columns, two spaces apart, scores under short headers (``f1``, ``mask``).

    ``width``: the most characters a line may take (a terminal's width). Long cells are cut
    first, then columns are left out (:data:`DROP_FIRST`, then config fields from the right)
    and named in a last line; None or 0: no limit.
    """
    if width:
        shown, rows, hidden = _fits(df, width)
    else:
        shown, rows, hidden = df, _cells(df), []
    header = [SHORT_HEADERS.get(str(c), str(c)) for c in shown.columns]
    lines = _layout(header, rows)
    if hidden:
        note = f"({len(hidden)} more columns: {', '.join(hidden)}; --width 0 or --csv shows all)"
        lines += textwrap.wrap(note, width)
    return "\n".join(lines) + "\n"


def csv_text(df: pd.DataFrame) -> str:
    """The table as CSV with the full column names, for a spreadsheet or pandas."""
    return df.to_csv(index=False, lineterminator="\n")


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (``|`` in cells escaped), e.g. for a pull request."""

    def row(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    lines = [row([str(c) for c in df.columns]), row(["---"] * len(df.columns))]
    lines += [row(r) for r in _cells(df)]
    return "\n".join(lines) + "\n"
