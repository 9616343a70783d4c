"""``python -m kit.runs --prune``: what may go to free disk space, listed before anything goes.

Whole run folders of failed runs and of ``--smoke`` runs go; complete runs lose only their
``last.pt`` (what ``--resume`` needs; ``best.pt`` and the predictions stay, so they still
ensemble, score and predict). A run that is still running, and everything inside it, is never
touched; so are interrupted and incomplete runs (they can be resumed), and a failed K-fold
parent keeps its complete folds.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kit.runfolder import LAST, drop_last, read_status, writer_alive

__all__ = ["Deletion", "apply", "describe", "plan"]


@dataclass(frozen=True)
class Deletion:
    """One thing :func:`apply` deletes: a whole run folder or one checkpoint file."""

    path: Path
    why: str  # "failed run", "smoke run", "complete run's last.pt"
    bytes: int

    @property
    def whole_run(self) -> bool:
        return self.path.is_dir()


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _alive(row: pd.Series) -> bool:
    if row["status"] == "running":
        return True
    try:  # a status.json the ledger could read a moment ago; a live writer always wins
        return writer_alive(read_status(row["run_dir"])) is True
    except (OSError, ValueError):
        return False


def _under(path: Path, folders: list[Path]) -> bool:
    return any(path == f or f in path.parents for f in folders)


def plan(df: pd.DataFrame) -> list[Deletion]:
    """What pruning the ledger rows ``df`` (:func:`kit.runs.load`) would delete, in order."""
    rows = [row for _, row in df.iterrows()]
    live = [Path(r["run_dir"]) for r in rows if _alive(r)]
    parents = set(df["parent"].dropna()) if "parent" in df else set()
    out: list[Deletion] = []
    for row in rows:
        run = Path(row["run_dir"])
        # a live run, anything inside one, or inside a folder already going: leave it alone
        if _under(run, live) or any(_under(run, [d.path]) for d in out if d.whole_run):
            continue
        smoke = bool(row.get("cfg.smoke")) if pd.notna(row.get("cfg.smoke")) else False
        has_folds = row["name"] in parents
        if smoke and not has_folds:
            out.append(Deletion(run, "smoke run", _size(run)))
        elif row["status"] == "failed" and not has_folds:
            out.append(Deletion(run, "failed run", _size(run)))
        elif row["status"] == "complete" and (run / LAST).is_file():
            out.append(Deletion(run / LAST, f"complete run's {LAST}", _size(run / LAST)))
    return out


def describe(deletions: list[Deletion]) -> str:
    """The list :func:`plan` made, one line per item, and the space it frees."""
    if not deletions:
        return "nothing to prune\n"
    total = sum(d.bytes for d in deletions)
    lines = [f"{len(deletions)} to delete, {total / 1e6:.1f} MB:"]
    lines += [f"  {d.bytes / 1e6:9.1f} MB  {d.path}  ({d.why})" for d in deletions]
    return "\n".join(lines) + "\n"


def apply(deletions: list[Deletion]) -> int:
    """Delete what :func:`plan` listed; returns the bytes freed."""
    freed = 0
    for d in deletions:
        if d.whole_run:
            shutil.rmtree(d.path)
            freed += d.bytes
        else:
            freed += drop_last(d.path.parent)
    return freed
