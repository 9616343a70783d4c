"""Plain-text and GitHub-markdown renderings of a ledger table."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from kit.runs.compare import is_score

__all__ = ["cell", "to_markdown", "to_text"]


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


def to_text(df: pd.DataFrame) -> str:
    """Fixed-width columns, two spaces apart."""
    header = [str(c) for c in df.columns]
    rows = _cells(df)
    widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
    lines = [
        "  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table (``|`` in cells escaped), e.g. for a pull request."""

    def row(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    lines = [row([str(c) for c in df.columns]), row(["---"] * len(df.columns))]
    lines += [row(r) for r in _cells(df)]
    return "\n".join(lines) + "\n"
