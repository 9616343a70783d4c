"""Reading a run folder (docs/run-folder.md): records, epochs, checked prediction files, the
:class:`Run`, whether its writer is alive and whether it may be resumed under a config.

The record readers give ``{}`` for a missing file unless ``missing_ok=False`` (the ledger lists
unfinished and foreign folders too); a file that is there but unreadable always raises, naming
it (a prediction file's error: the line and field, what was found and what was expected).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kit.config import Config, resumable_fields, saved_config, split_fields
from kit.errors import RunBusyError
from kit.io import csv_source, read_json
from kit.labels import NUM_CLASSES
from kit.runfolder.names import (
    CONFIG,
    ENV,
    LAST,
    METRICS,
    PROB_COLUMNS,
    PSEUDO_COLUMNS,
    PSEUDO_LABELS,
    STATUS,
    SUBMISSION_COLUMNS,
    SUMMARY,
    TASK_COLUMNS,
    TEST_KEYS,
    TEST_PROBS,
    TRACKER_IDS,
    VAL_COLUMNS,
    VAL_KEYS,
    VAL_PROBS,
)

__all__ = [
    "Run",
    "Split",
    "ValKeys",
    "check_resumable",
    "check_unchanged",
    "checked_class_ids",
    "checked_numbers",
    "checked_probs",
    "fold_run_dirs",
    "is_complete",
    "is_run_folder",
    "nothing_to_train",
    "probs_task",
    "pseudo_probs_file",
    "read_checked_csv",
    "read_config",
    "read_env",
    "read_metrics",
    "read_predictions",
    "read_pseudo_labels",
    "read_run",
    "read_status",
    "read_submission",
    "read_summary",
    "read_task_predictions",
    "read_task_test_probs",
    "read_task_val_probs",
    "read_test_probs",
    "read_tracker_ids",
    "read_val",
    "read_val_keys",
    "read_val_probs",
    "run_score",
    "running_pid",
    "writer_alive",
]

#: Any of these makes a folder a run folder (of any age: a run killed at start has config.json).
_MARKERS = (CONFIG, STATUS, SUMMARY, METRICS)
# CSV round-trips lose a little precision; a row off by more than this is not probabilities.
_SUM_TOL = 1e-3


def _record(run_dir: str | os.PathLike[str], name: str, missing_ok: bool) -> dict[str, Any]:
    path = Path(run_dir) / name
    if missing_ok and not path.is_file():
        return {}
    value = read_json(path)
    if not isinstance(value, dict):
        raise ValueError(f"{path}: found a JSON {type(value).__name__}; expected an object {{...}}")
    return value


def read_config(run_dir: str | os.PathLike[str], *, missing_ok: bool = True) -> dict[str, Any]:
    """``config.json``, with the fields it predates as the run trained them
    (:func:`kit.config.saved_config`)."""
    return saved_config(_record(run_dir, CONFIG, missing_ok))


def read_env(run_dir: str | os.PathLike[str], *, missing_ok: bool = True) -> dict[str, Any]:
    return _record(run_dir, ENV, missing_ok)


def read_status(run_dir: str | os.PathLike[str], *, missing_ok: bool = True) -> dict[str, Any]:
    return _record(run_dir, STATUS, missing_ok)


def read_summary(run_dir: str | os.PathLike[str], *, missing_ok: bool = True) -> dict[str, Any]:
    """``summary.json`` (``{}``, when missing and ``missing_ok``, means unfinished)."""
    return _record(run_dir, SUMMARY, missing_ok)


def is_complete(run_dir: str | os.PathLike[str]) -> bool:
    """Whether ``run_dir`` finished: status ``complete`` with its summary and predictions."""
    run_dir = Path(run_dir)
    done = read_status(run_dir).get("status") == "complete"
    return done and (run_dir / SUMMARY).is_file() and (run_dir / VAL_PROBS).is_file()


def read_metrics(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of ``metrics.csv``, one per epoch (none when it is missing or empty)."""
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
        arrays = {k: getattr(self, k) for k in ("ids", "labels", "probs", "truth")}
        return replace(self, **{k: None if a is None else a[order] for k, a in arrays.items()})


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
    frame = df[list(cols)]
    # read_csv parses numbers already; to_numeric is for the text columns (5x slower)
    if not all(pd.api.types.is_numeric_dtype(t) for t in frame.dtypes):
        frame = frame.apply(pd.to_numeric, errors="coerce")
    values = frame.to_numpy(np.float64)
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


def _read_probs(
    path: str | Path, keys: Sequence[str], cols: Sequence[str], ids: list[str]
) -> Split:
    """The ``keys`` then the probability ``cols`` of a prediction file; ``truth`` from its
    ``label`` column when ``keys`` has one (validation)."""
    path = Path(path)
    return _probs_split(path, read_checked_csv(path, [*keys, *cols], ids), keys, cols)


def _probs_split(path: Path, df: pd.DataFrame, keys: Sequence[str], cols: Sequence[str]) -> Split:
    probs = checked_probs(path, df, cols)
    truth = checked_class_ids(path, df, "label") if "label" in keys else None
    return Split(df["image_id"].to_numpy(object), probs.argmax(axis=1), probs, truth, path)


def read_val_probs(path: str | Path) -> Split:
    """Validation / out-of-fold probabilities: ``image_id,person_id,label,fold,p0..p17``."""
    return _read_probs(path, VAL_KEYS, PROB_COLUMNS, ["image_id", "person_id"])


def read_test_probs(path: str | Path) -> Split:
    """Test probabilities: ``image_id,p0..p17`` in info.csv order."""
    return _read_probs(path, TEST_KEYS, PROB_COLUMNS, ["image_id"])


def read_submission(path: str | Path) -> Split:
    """A submission CSV (``ImageID,ans``): test labels, no probabilities."""
    path = Path(path)
    image_id, ans = SUBMISSION_COLUMNS
    df = read_checked_csv(path, SUBMISSION_COLUMNS, [image_id])
    return Split(df[image_id].to_numpy(object), checked_class_ids(path, df, ans), None, None, path)


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


# The row keys of val_probs.csv: calibration and stacking estimate their gain honestly by
# fitting on some folds and scoring on the others, so they need each row's person and fold.


@dataclass(frozen=True)
class ValKeys:
    """Per validation row: image id, person id and fold (the run's validation fold)."""

    ids: np.ndarray
    person_ids: np.ndarray
    folds: np.ndarray

    def take(self, ids: np.ndarray) -> ValKeys:
        """These keys in the row order of ``ids`` (every id must be present)."""
        pos = pd.Index(self.ids).get_indexer(ids)
        if (pos < 0).any():
            missing = ids[int(np.flatnonzero(pos < 0)[0])]
            raise ValueError(f"validation row {missing!r} has no person / fold in this file")
        return ValKeys(self.ids[pos], self.person_ids[pos], self.folds[pos])


def read_val_keys(path: str | Path) -> ValKeys:
    """``image_id, person_id, fold`` of ``val_probs.csv`` (a file, or the run folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / VAL_PROBS
    df = read_checked_csv(path, ["image_id", "person_id", "fold"], ["image_id", "person_id"])
    return _val_keys(path, df)


def _val_keys(path: Path, df: pd.DataFrame) -> ValKeys:
    folds = checked_numbers(path, df, ["fold"])[:, 0].astype(np.int64)
    return ValKeys(df["image_id"].to_numpy(object), df["person_id"].to_numpy(object), folds)


def read_val(path: str | Path) -> tuple[Split, ValKeys]:
    """:func:`read_val_probs` and :func:`read_val_keys` of one ``val_probs.csv``, parsed once
    (the same checks; the keys in the split's row order)."""
    path = Path(path)
    df = read_checked_csv(path, VAL_COLUMNS, ["image_id", "person_id"])
    return _probs_split(path, df, VAL_KEYS, PROB_COLUMNS), _val_keys(path, df)


# A per-task run's probability files (a head that predicts one task only knows nothing of
# the other two, so it writes its task's columns, TASK_COLUMNS, never 18-way rows made up
# by spreading them evenly): val_probs.csv is image_id,person_id,label,fold,<task>0,...
# (label stays the 18-way class id: the truth of every task), test_probs.csv
# image_id,<task>0,... in info.csv order. The ensembler merges a mask, a gender and an age
# run into 18 classes with kit.labels.joint_from_heads.


def probs_task(path: str | Path) -> str | None:
    """The task whose columns the probability file ``path`` holds, or None for 18-way rows
    (or a file that is neither: the 18-way reader then names what is missing)."""
    try:
        header = pd.read_csv(**csv_source(path), nrows=0).columns
    except (OSError, ValueError):
        return None
    if all(c in header for c in PROB_COLUMNS):
        return None
    found = [t for t, cols in TASK_COLUMNS.items() if all(c in header for c in cols)]
    return found[0] if len(found) == 1 else None


def read_task_val_probs(path: str | Path, task: str) -> Split:
    """A per-task run's validation rows: ``probs`` (n, classes of ``task``), ``labels`` the
    predicted value of the task, ``truth`` the 18-way class."""
    return _read_probs(path, VAL_KEYS, TASK_COLUMNS[task], ["image_id"])


def read_task_test_probs(path: str | Path, task: str) -> Split:
    """A per-task run's test rows: ``image_id`` and the task's columns, info.csv order."""
    return _read_probs(path, TEST_KEYS, TASK_COLUMNS[task], ["image_id"])


def read_task_predictions(run_dir: str | Path) -> tuple[str, Split | None, Split | None] | None:
    """``(task, validation split, test split)`` of a per-task run folder (None for a file it
    lacks), or None when ``run_dir`` is not a per-task run."""
    run_dir = Path(run_dir)
    val_path, test_path = run_dir / VAL_PROBS, run_dir / TEST_PROBS
    task = probs_task(val_path if val_path.exists() else test_path)
    if task is None:
        return None
    val = read_task_val_probs(val_path, task) if val_path.exists() else None
    return task, val, read_task_test_probs(test_path, task) if test_path.exists() else None


# A stage-2 run's pseudo-labels (docs/run-folder.md, "Pseudo-labels"): where they came
# from, and the pseudo_labels.csv it trained on.


def pseudo_probs_file(source: str | Path) -> tuple[Path, Path | None]:
    """(test probabilities file, the run folder holding it or None) of a pseudo-label source:
    a run folder or K-fold parent (its ``test_probs.csv``) or a ``test_probs.csv``-shaped file
    (``image_id,p0..p17``, e.g. an ensemble's probabilities)."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / TEST_PROBS).is_file():
            raise FileNotFoundError(
                f"pseudo_labels: {path} has no {TEST_PROBS}; expected a finished run folder or "
                "K-fold parent trained with an eval set, or a CSV of image_id,p0..p17"
            )
        return path / TEST_PROBS, path
    if not path.is_file():
        raise FileNotFoundError(
            f"pseudo_labels: {path} not found; expected a run folder, K-fold parent or a CSV "
            "of image_id,p0..p17"
        )
    return path, path.parent if path.name == TEST_PROBS else None


def read_pseudo_labels(run_dir: str | Path) -> pd.DataFrame | None:
    """A run's ``pseudo_labels.csv`` (None when the run used none)."""
    path = Path(run_dir) / PSEUDO_LABELS
    if not path.is_file():
        return None
    return read_checked_csv(path, PSEUDO_COLUMNS, ["image_id"])


def read_tracker_ids(run_dir: Path) -> dict[str, str]:
    """Tracker name -> its run id, from ``trackers.json`` (empty when there is none)."""
    path = Path(run_dir) / TRACKER_IDS
    if not path.is_file():
        return {}
    ids = read_json(path)
    if not isinstance(ids, dict) or not all(isinstance(v, str) for v in ids.values()):
        raise ValueError(f"{path}: expected a mapping of tracker name -> run id text")
    return ids


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
        pass
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


#: fields a resumed run may change (field metadata ``resume``); any other change is refused
_MAY_CHANGE = resumable_fields()


def nothing_to_train(cfg: Config) -> bool:
    """Whether ``cfg`` resumes a single run that is already complete (it may have no last.pt:
    ``keep_last`` off or ``--prune``)."""
    return bool(cfg.resume) and cfg.folds is None and is_complete(Path(cfg.resume))


def check_resumable(cfg: Config, folder: Path) -> None:
    """Refuse to resume ``folder`` under ``cfg`` when that cannot work, before anything is
    written: a run folder needs its ``last.pt`` and no live process writing it, a K-fold parent
    (``cfg.folds`` set) its config.json; then :func:`check_unchanged`."""
    if cfg.folds is None:
        if not (folder / LAST).is_file():
            raise FileNotFoundError(f"cannot resume {folder}: it has no last.pt")
        pid = running_pid(folder)
        if pid is not None:  # two processes in one folder would overwrite each other's files
            raise RunBusyError(
                f"cannot resume {folder}: it is still running (process {pid} on this machine); "
                "stop that process first (its last.pt stays), or wait for it to finish"
            )
    elif not (folder / CONFIG).is_file():
        raise FileNotFoundError(
            f"cannot resume {folder}: it has no config.json; expected a K-fold parent "
            "folder (<output_dir>/<ts>_<name>_kfold)"
        )
    check_unchanged(cfg, folder)


def check_unchanged(cfg: Config, folder: Path) -> None:
    """Refuse ``cfg`` for a resume of ``folder`` when it changes a field that shapes the
    weights, the data, the split or the schedule (all but :func:`kit.config.resumable_fields`);
    a K-fold parent's message singles out the split's fields."""
    saved = Config.from_dict(read_config(folder, missing_ok=False))
    if cfg.folds is not None and saved.folds is None:
        raise ValueError(
            f"cannot resume {folder} as a K-fold: it is a single run (its config.json has no "
            "folds); resume it without --folds, or give its K-fold parent folder"
        )
    changed = _changed(saved, cfg, split_fields()) if cfg.folds is not None else []
    if changed:
        raise ValueError(
            f"cannot resume {folder} with changed {'; '.join(changed)}: these decide which "
            "images each fold validates on; keep them, or start a new K-fold"
        )
    changed = _changed(saved, cfg, [f for f in saved.to_dict() if f not in _MAY_CHANGE])
    if changed:
        raise ValueError(
            f"cannot resume {folder} with changed {'; '.join(changed)}: they shape the weights, "
            "the data, the split or the schedule its last.pt was trained under; resume with "
            f"--resume {folder} alone (it loads the run's own config.json), or start a new run"
        )


def _changed(saved: Config, cfg: Config, names: Any) -> list[str]:
    return [
        f"{n}: {getattr(saved, n)!r} -> {getattr(cfg, n)!r}"
        for n in names
        if getattr(saved, n) != getattr(cfg, n)
    ]
