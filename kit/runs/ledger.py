"""Reading run folders into one table: a row per run, metrics and every config field.

Only the files of docs/run-folder.md are read. A run that never finished still gets a row:
its best metrics.csv epoch stands in for summary.json.
"""

from __future__ import annotations

import json
import os
import warnings
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

__all__ = ["STALE_AFTER", "RunSkipped", "flatten_config", "ledger_row", "load"]


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


def _writer_gone(status: dict[str, Any]) -> bool:
    """Whether the process that wrote a "running" status.json is known to have ended."""
    return writer_alive(status) is False


def _status(
    run: Path, status: dict[str, Any], summary: dict[str, Any], now: datetime, stale: timedelta
) -> str:
    if summary:
        return str(summary.get("status") or "complete")
    state = status.get("status")
    if state in ("interrupted", "failed", "pruned"):
        return state
    if state == "running":
        if _writer_gone(status):
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
