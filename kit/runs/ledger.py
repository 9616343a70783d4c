"""The ledger's table: a row per run folder, read from its files (metrics and every config
field); the rows and columns a reader chooses (``--name``, ``--status``, ``--no-smoke``,
``--study``, ``--columns``); the table printed as plain text, GitHub markdown or CSV.

Only the files of docs/run-folder.md are read. A run that never finished still gets a row:
its best metrics.csv epoch stands in for summary.json.
"""

from __future__ import annotations

import fnmatch
import json
import math
import os
import textwrap
import warnings
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from kit.cli import error_text
from kit.runfolder import (
    SCORE_COLUMNS,
    STATUS,
    TRANSFORM_FIELD,
    fold_run_dirs,
    is_run_folder,
    read_config,
    read_env,
    read_metrics,
    read_status,
    read_summary,
    transform_summary,
    writer_alive,
)

__all__ = [
    "DROP_FIRST",
    "SHORT_HEADERS",
    "STALE_AFTER",
    "STATUSES",
    "RunSkipped",
    "cell",
    "csv_text",
    "flatten_config",
    "is_score",
    "ledger_row",
    "load",
    "pick_columns",
    "select",
    "to_markdown",
    "to_text",
]


class RunSkipped(UserWarning):
    """A run folder left out of the ledger because one of its files cannot be read."""


#: A "running" status.json whose ``updated`` time is older than this is shown "incomplete":
#: the process most likely died without recording why (a run updates it every epoch).
STALE_AFTER = timedelta(hours=2)
# env.json spellings accepted, first match wins (nested "git": {...} also accepted).
_ENV_KEYS = {
    "commit": ("git_commit", "commit", "sha"),
    "dirty": ("git_dirty", "dirty"),
    "user": ("user", "username"),
    "start": ("start_time", "started", "start", "time"),
}

#: The statuses a ledger row can have (see :func:`kit.runs.load`).
STATUSES = ("complete", "running", "interrupted", "failed", "pruned", "incomplete")


def _env_value(env: dict[str, Any], what: str) -> Any:
    for scope in (env, env.get("git") if isinstance(env.get("git"), dict) else {}):
        for key in _ENV_KEYS[what]:
            if key in scope:
                return scope[key]
    return None


def flatten_config(config: dict[str, Any]) -> dict[str, Any]:
    """``cfg.<field>`` per top-level field; lists and dicts as compact JSON text.

    Dicts are not split into sub-fields so that one changed setting is one changed field.
    """
    out = {}
    for key, value in config.items():
        if isinstance(value, (list, tuple, dict)):
            value = json.dumps(value, sort_keys=True, separators=(",", ":"))
        out[f"cfg.{key}"] = value
    return out


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        t = datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _date(run: Path, env: dict[str, Any]) -> str:
    t = _parse_time(_env_value(env, "start"))
    if t is None:
        try:  # runs/<YYYYmmdd-HHMMSS>_<name>
            t = datetime.strptime(run.name[:15], "%Y%m%d-%H%M%S")
        except ValueError:
            t = datetime.fromtimestamp(run.stat().st_mtime)
    return t.strftime("%Y-%m-%d %H:%M")


def _status(
    run: Path, status: dict[str, Any], summary: dict[str, Any], now: datetime, stale: timedelta
) -> str:
    if summary:
        return str(summary.get("status") or "complete")
    state = status.get("status")
    if state in ("interrupted", "failed", "pruned"):
        return state
    if state == "running":
        if writer_alive(status) is False:  # its process is known to have ended
            return "incomplete"
        updated = _parse_time(status.get("updated"))
        if updated is None:  # fall back on when status.json was last written
            updated = datetime.fromtimestamp((run / STATUS).stat().st_mtime, timezone.utc)
        return "running" if now - updated < stale else "incomplete"
    return "incomplete"  # no status, or "complete" without a summary.json


def _scores(run: Path, summary: dict[str, Any]) -> dict[str, Any]:
    if summary:
        out = {k: summary.get(k) for k in SCORE_COLUMNS}
        out["best_epoch"] = summary.get("best_epoch")
        return out
    df = pd.DataFrame(read_metrics(run))
    if "val_macro_f1" in df:  # a cell that is not a number counts as missing, not as a crash
        df["val_macro_f1"] = pd.to_numeric(df["val_macro_f1"], errors="coerce")
    if df.empty or "val_macro_f1" not in df or df["val_macro_f1"].isna().all():
        return {k: None for k in (*SCORE_COLUMNS, "best_epoch")}
    best = df.loc[df["val_macro_f1"].idxmax()]
    out = {k: (float(best[k]) if k in best else None) for k in SCORE_COLUMNS}
    out["best_epoch"] = int(best["epoch"]) if "epoch" in best else None
    return out


def ledger_row(
    run: str | os.PathLike[str],
    now: datetime | None = None,
    stale_after: timedelta = STALE_AFTER,
) -> dict[str, Any]:
    """One ledger row for the run folder ``run`` (see :func:`load` for the columns)."""
    run = Path(run)
    now = now or datetime.now(timezone.utc)
    env, status, summary = read_env(run), read_status(run), read_summary(run)
    fold_run_dirs(run, summary)  # a damaged "folds" list fails here, naming summary.json
    commit = _env_value(env, "commit")
    row = {
        "name": run.name,
        "run_dir": str(run),
        "parent": None,
        "kfold": bool(summary.get("folds")),
        "date": _date(run, env),
        "user": _env_value(env, "user"),
        "commit": str(commit)[:7] if commit else None,
        "dirty": bool(_env_value(env, "dirty")),
        "status": _status(run, status, summary, now, stale_after),
        **_scores(run, summary),
    }
    row.update(flatten_config(read_config(run)))
    # a custom training transform is a setting the Config cannot name: compared like a field
    row[f"cfg.{TRANSFORM_FIELD}"] = transform_summary(run)
    if row.get("cfg.split_seed") is None and "cfg.seed" in row:
        # the seed the split was drawn with: runs of one split_seed validate on the same people
        row["cfg.split_seed"] = row["cfg.seed"]
    return row


def _readable_row(run: Path, now: datetime | None, stale: timedelta) -> dict[str, Any] | None:
    """The run's row, or None with a :class:`RunSkipped` warning naming the damaged file."""
    try:
        return ledger_row(run, now, stale)
    except (ValueError, OSError) as err:
        warnings.warn(f"skipped {run}: {error_text(err)}", RunSkipped, stacklevel=3)
        return None


def _fold_parents(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Fold run folder name -> K-fold parent name, from the parents' summary.json."""
    parents = {}
    for row in rows:
        if row["kfold"]:
            for fold in fold_run_dirs(row["run_dir"]):
                parents[fold.name] = row["name"]
    return parents


def _holds_runs(path: Path) -> bool:
    """A folder that is no run folder itself but holds some: a ``--seeds`` parent."""
    if path.name.startswith(".") or not path.is_dir() or is_run_folder(path):
        return False
    return any(is_run_folder(p) and not p.name.startswith(".") for p in path.iterdir())


def load(
    dir: str | os.PathLike[str] = "runs",
    now: datetime | None = None,
    stale_after: timedelta = STALE_AFTER,
) -> pd.DataFrame:
    """One row per run folder under ``dir`` and one level below (fold runs of a K-fold parent,
    repeats in a ``--seeds`` parent folder).

    Columns: name, run_dir, parent (K-fold or ``--seeds`` parent's name, or None), kfold, date,
    user, commit (short), dirty, status (complete / running / interrupted / failed / incomplete),
    the :data:`kit.runfolder.SCORE_COLUMNS`, best_epoch, and ``cfg.<field>`` for every config field.
    A "running" run not updated within ``stale_after`` of ``now``, or whose process on this
    machine has ended (killed, crashed), is shown "incomplete". A folder whose config.json,
    summary.json, status.json, env.json or metrics.csv cannot be read is left out with a
    :class:`RunSkipped` warning naming it, so one damaged folder never hides the others.
    """
    root = Path(dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder; expected a folder of run folders")
    rows = []
    tops = [root] if is_run_folder(root) else sorted(filter(is_run_folder, root.iterdir()))
    tops = [p for p in tops if not p.name.startswith(".") or p == root]
    for top in tops:
        row = _readable_row(top, now, stale_after)
        rows += [row] if row else []
        subs = sorted(p for p in top.iterdir() if is_run_folder(p) and not p.name.startswith("."))
        for sub in subs:
            row = _readable_row(sub, now, stale_after)
            rows += [{**row, "parent": top.name}] if row else []
    if not is_run_folder(root):  # a --seeds parent holds run folders without being one
        for group in sorted(p for p in root.iterdir() if _holds_runs(p)):
            for sub in sorted(p for p in group.iterdir() if is_run_folder(p)):
                row = _readable_row(sub, now, stale_after)
                rows += [{**row, "parent": group.name}] if row else []
    parents = _fold_parents(rows)
    for row in rows:
        row["parent"] = row["parent"] or parents.get(row["name"])
    df = pd.DataFrame(rows)
    return df if rows else pd.DataFrame(columns=["name", "run_dir", "status"])


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


def is_score(column: str) -> bool:
    """Whether higher is better for ``column`` (F1 and accuracy columns)."""
    return "f1" in column or "accuracy" in column


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
#: rightmost first), then the per-head scores (``_DROP_LAST``). name, status, F1, changes and
#: flag always stay; the seeds' spread and the noise verdict go only once ``changes`` is cut
#: (``_DROP_CUT``, in this order: the verdict last).
DROP_FIRST = ("date", "who", "val_accuracy", "parent", "best_epoch", "pair", "noise")
_DROP_LAST = ("val_f1_age", "val_f1_gender", "val_f1_mask")
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
