"""Reading a run folder (docs/run-folder.md): its JSON records and epochs, its predictions,
the :class:`Run`, and whether the process that writes it is still alive.

The record readers (:func:`read_config`, :func:`read_env`, :func:`read_status`,
:func:`read_summary`) give ``{}`` for a missing file unless ``missing_ok=False``: the ledger
lists unfinished and foreign folders too. A file that is there but unreadable always raises,
naming it.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from kit.config import Config, saved_config
from kit.io import csv_source, read_json
from kit.runfolder.names import (
    CONFIG,
    ENV,
    METRICS,
    STATUS,
    SUMMARY,
    TEST_PROBS,
    VAL_PROBS,
)
from kit.runfolder.predictions import Split, read_test_probs, read_val_probs

__all__ = [
    "Run",
    "fold_run_dirs",
    "is_complete",
    "is_run_folder",
    "read_config",
    "read_env",
    "read_metrics",
    "read_predictions",
    "read_run",
    "read_status",
    "read_summary",
    "run_score",
    "running_pid",
    "writer_alive",
]

#: Any of these makes a folder a run folder (of any age: a run killed at start has config.json).
_MARKERS = (CONFIG, STATUS, SUMMARY, METRICS)


def _record(run_dir: str | os.PathLike[str], name: str, missing_ok: bool) -> dict[str, Any]:
    path = Path(run_dir) / name
    if missing_ok and not path.is_file():
        return {}
    value = read_json(path)
    if not isinstance(value, dict):
        raise ValueError(f"{path}: found a JSON {type(value).__name__}; expected an object {{...}}")
    return value


def read_config(run_dir: str | os.PathLike[str], *, missing_ok: bool = True) -> dict[str, Any]:
    """``config.json`` as a dict (``{}`` when missing and ``missing_ok``), with the fields it
    predates as the run trained them (:func:`kit.config.saved_config`)."""
    return saved_config(_record(run_dir, CONFIG, missing_ok))


def read_env(run_dir: str | os.PathLike[str], *, missing_ok: bool = True) -> dict[str, Any]:
    """``env.json`` as a dict (``{}`` when missing and ``missing_ok``)."""
    return _record(run_dir, ENV, missing_ok)


def read_status(run_dir: str | os.PathLike[str], *, missing_ok: bool = True) -> dict[str, Any]:
    """``status.json`` as a dict (``{}`` when missing and ``missing_ok``)."""
    return _record(run_dir, STATUS, missing_ok)


def read_summary(run_dir: str | os.PathLike[str], *, missing_ok: bool = True) -> dict[str, Any]:
    """``summary.json`` as a dict (``{}`` when missing, i.e. unfinished, and ``missing_ok``)."""
    return _record(run_dir, SUMMARY, missing_ok)


def is_complete(run_dir: str | os.PathLike[str]) -> bool:
    """Whether ``run_dir`` finished: status ``complete`` with its summary and predictions."""
    run_dir = Path(run_dir)
    done = read_status(run_dir).get("status") == "complete"
    return done and (run_dir / SUMMARY).is_file() and (run_dir / VAL_PROBS).is_file()


def read_metrics(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of ``metrics.csv``, one per epoch (empty when it is missing or empty).

    Raises ValueError naming the file when it is not a readable CSV.
    """
    path = Path(run_dir) / METRICS
    if not path.is_file() or path.stat().st_size == 0:
        return []
    try:
        return pd.read_csv(**csv_source(path)).to_dict("records")
    except (pd.errors.EmptyDataError, pd.errors.ParserError) as err:
        raise ValueError(f"{path}: not a readable CSV ({err})") from err


def is_run_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder holding any of a run's records (finished or not)."""
    path = Path(path)
    return path.is_dir() and any((path / f).exists() for f in _MARKERS)


def fold_run_dirs(
    parent: str | os.PathLike[str], summary: dict[str, Any] | None = None
) -> list[Path]:
    """The fold run folders a K-fold parent's ``summary.json`` names, in its order (empty for
    an ordinary run). ``run_dir`` entries are relative to the parent (absolute ones are kept)."""
    summary = read_summary(parent) if summary is None else summary
    folds = summary.get("folds") or []
    if not isinstance(folds, list) or not all(isinstance(f, dict) for f in folds):
        raise ValueError(
            f"{Path(parent) / SUMMARY}: 'folds' is {type(folds).__name__} {folds!r:.60}; "
            'expected a list of {"fold": k, "run_dir": ...} objects'
        )
    return [Path(parent) / str(f.get("run_dir", "")) for f in folds]


def read_predictions(run_dir: str | os.PathLike[str]) -> tuple[Split | None, Split | None]:
    """The validation and test :class:`Split` of a finished run folder or K-fold parent (None
    for a file it does not have); the validation rows are checked against ``n_val``."""
    run_dir = Path(run_dir)
    val_path, test_path = run_dir / VAL_PROBS, run_dir / TEST_PROBS
    if not val_path.exists() and not test_path.exists():
        has_status = (run_dir / STATUS).exists()
        state = read_status(run_dir).get("status", "?") if has_status else f"no {STATUS}"
        raise FileNotFoundError(
            f"{run_dir}: no {VAL_PROBS} or {TEST_PROBS} (run status: {state}); "
            "a run writes them when it finishes. Expected a finished run folder or a submission "
            "CSV."
        )
    val = read_val_probs(val_path) if val_path.exists() else None
    n_val = read_summary(run_dir).get("n_val")
    if val is not None and n_val is not None and int(n_val) != len(val.ids):
        raise ValueError(
            f"{val_path}: {len(val.ids)} rows but {run_dir / SUMMARY} says n_val = {n_val}; "
            "expected the same (was the file truncated or replaced?)"
        )
    return val, read_test_probs(test_path) if test_path.exists() else None


@dataclass
class Run:
    """A run folder and how it scored: what ``fit`` returns and :func:`read_run` reads.

    ``best_score`` is the validation macro F1 (a per-task run's: its task's F1, see
    :func:`run_score`). For a K-fold parent, ``folds`` holds the fold runs, ``best_score`` is
    the out-of-fold score and ``best_epoch`` is 0 (each fold has its own).
    """

    run_dir: Path
    status: str
    config: Config
    summary: dict[str, Any]
    best_score: float
    best_epoch: int
    folds: list[Run] = field(default_factory=list)

    @property
    def kfold(self) -> bool:
        """Whether this is a K-fold parent folder."""
        return bool(self.folds) or bool(self.summary.get("folds"))


def run_score(summary: dict[str, Any]) -> float:
    """The score a summary's run was selected by: ``val_macro_f1``, or for a per-task run
    (``task`` in the summary) its task's ``val_f1_<task>``."""
    task = summary.get("task")
    return summary["val_macro_f1"] if task is None else summary[f"val_f1_{task}"]


def read_run(run_dir: str | os.PathLike[str]) -> Run:
    """The :class:`Run` of a complete run folder (or K-fold parent), from its files."""
    run_dir = Path(run_dir)
    summary = read_summary(run_dir, missing_ok=False)
    config = Config.from_dict(read_config(run_dir, missing_ok=False))
    folds = [read_run(d) for d in fold_run_dirs(run_dir, summary)]
    score, epoch = run_score(summary), summary.get("best_epoch") or 0
    return Run(
        run_dir, str(summary.get("status", "complete")), config, summary, score, epoch, folds
    )


def writer_alive(status: dict[str, Any]) -> bool | None:
    """Whether the process that wrote status.json still exists; None when that cannot be told
    (another machine, an old status.json without pid, not POSIX)."""
    pid, host = status.get("pid"), status.get("host")
    if os.name != "posix" or not isinstance(pid, int) or host != socket.gethostname():
        return None
    try:
        os.kill(pid, 0)  # signal 0 checks existence without touching the process
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's live process
        return True
    return True


def running_pid(run: str | os.PathLike[str]) -> int | None:
    """The id of another live process of this machine that is training in the run folder
    ``run`` (its status.json says running), or None: resuming it now would mix two runs."""
    try:
        status = read_status(run)
    except (OSError, ValueError):
        return None
    pid = status.get("pid")
    if status.get("status") != "running" or pid == os.getpid() or not writer_alive(status):
        return None
    return int(pid)
