"""Choosing the ledger's rows (``--name``, ``--status``, ``--no-smoke``) and columns
(``--columns``)."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

import pandas as pd

from kit.runs.render import SHORT_HEADERS

__all__ = ["STATUSES", "pick_columns", "select"]

#: The statuses a ledger row can have (see :func:`kit.runs.load`).
STATUSES = ("complete", "running", "interrupted", "failed", "pruned", "incomplete")


def _matches(text: object, pattern: str) -> bool:
    text = "" if text is None else str(text)
    if any(ch in pattern for ch in "*?["):
        return fnmatch.fnmatchcase(text, pattern)
    return pattern in text


def select(
    df: pd.DataFrame,
    *,
    name: str | None = None,
    status: Sequence[str] | None = None,
    smoke: bool | None = None,
    study: str | None = None,
) -> pd.DataFrame:
    """The rows of a ledger (:func:`kit.runs.load`) that match every filter given.

    ``name``: part of the folder name or of the run name (``cfg.name``), or a glob such as
    ``*focal*``. ``status``: any of :data:`STATUSES`. ``smoke``: False leaves out ``--smoke``
    runs, True keeps only them. ``study``: only the trials of this ``kit.tune`` study.
    """
    keep = pd.Series(True, index=df.index)
    if name is not None:
        names = df["cfg.name"] if "cfg.name" in df else pd.Series(None, index=df.index)
        hits = [
            _matches(folder, name) or _matches(run, name)
            for folder, run in zip(df["name"], names, strict=True)
        ]
        keep &= pd.Series(hits, index=df.index, dtype=bool)
    if status is not None:
        unknown = sorted(set(status) - set(STATUSES))
        if unknown:
            raise ValueError(f"--status {','.join(unknown)}: expected any of {', '.join(STATUSES)}")
        keep &= df["status"].isin(list(status))
    if smoke is not None and "cfg.smoke" in df:
        keep &= df["cfg.smoke"].map(lambda v: v is True) == smoke
    if study is not None:
        keep &= (df["cfg.study"] == study) if "cfg.study" in df else False
    return df[keep]


def pick_columns(shown: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``shown`` (:func:`kit.runs.table`) with only ``columns``, in that order; a short header
    (``f1``, ``acc``) or a config field's name works too. Unknown names are refused."""
    long = {short: full for full, short in SHORT_HEADERS.items()}
    wanted = [long.get(c, c) for c in columns]
    unknown = [c for c, w in zip(columns, wanted, strict=True) if w not in shown.columns]
    if unknown:
        raise ValueError(
            f"--columns: unknown column(s) {', '.join(unknown)}; expected any of "
            f"{', '.join(map(str, shown.columns))}"
        )
    return shown[wanted]
