"""Writing a run folder (docs/run-folder.md), every file atomically through :mod:`kit.io`."""

from __future__ import annotations

import contextlib
import csv
import getpass
import io as _io
import os
import platform
import socket
import sys
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kit import io
from kit.labels import NUM_CLASSES
from kit.runfolder.code import git_state
from kit.runfolder.names import (
    CONFIG,
    ENV,
    EPOCH_COLUMNS,
    LAST,
    METRICS,
    PROB_COLUMNS,
    PSEUDO_COLUMNS,
    PSEUDO_LABELS,
    STATUS,
    SUBMISSION_COLUMNS,
    SUMMARY,
    SUMMARY_KEYS,
    TEST_KEYS,
    TRACKER_IDS,
    prob_columns,
)
from kit.runfolder.read import read_tracker_ids

__all__ = [
    "check_output_dir",
    "create_run_dir",
    "drop_last",
    "env_info",
    "now",
    "package_version",
    "pseudo_record",
    "update_env",
    "write_config",
    "write_env",
    "write_metrics",
    "write_probs",
    "write_pseudo_labels",
    "write_run_probs",
    "write_status",
    "write_submission",
    "write_summary",
    "write_task_probs",
    "write_test_probs",
    "write_tracker_id",
]

_RUNS_FIX = "choose another --output-dir (Config.output_dir) or free space"
_PACKAGES = ("torch", "torchvision", "timm", "albumentations", "numpy", "pandas", "scikit-learn")


def now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def check_output_dir(output_dir: str | Path) -> None:
    """Refuse an ``output_dir`` no run folder can be made in (a file in the way, read-only,
    full, no permission) by making and removing a probe folder in it: a run that cannot write
    stops before any data is read, and leaves nothing behind."""
    parent = Path(output_dir)
    made = [p for p in (parent, *parent.parents) if not p.exists()]  # deepest first
    probe = parent / f".kit-write-check-{os.getpid()}"
    try:
        probe.mkdir(parents=True)
    except OSError as err:
        raise io.output_error(parent, err, _RUNS_FIX) from err
    finally:
        for folder in (probe, *made):
            with contextlib.suppress(OSError):
                folder.rmdir()


def create_run_dir(output_dir: str | Path, name: str) -> Path:
    """A new ``<output_dir>/<YYYYmmdd-HHMMSS>_<name>[-k]`` folder; never an existing one."""
    parent = Path(output_dir)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # read-only, full, or a file where the folder should be
        raise io.output_error(parent, err, _RUNS_FIX) from err
    stem = f"{datetime.now():%Y%m%d-%H%M%S}_{name}"
    for k in range(1, 10_000):
        path = parent / (stem if k == 1 else f"{stem}-{k}")
        try:
            path.mkdir()  # atomic: of two racing runs exactly one gets each name
            return path
        except FileExistsError:
            continue
        except OSError as err:
            raise io.output_error(path, err, _RUNS_FIX) from err
    raise FileExistsError(f"no free run folder name for {parent / stem}")


def package_version(package: str) -> str | None:
    """The installed version of ``package``, or None."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def env_info(device: str) -> dict[str, Any]:
    """Git commit and dirty flag of the cwd's repository, versions, machine, command line.

    Dirty counts untracked files under ``recipes/`` and ``kit/`` too (listed in
    ``git_untracked``): a recipe run before it is committed is not in the commit.
    """
    git = git_state()
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    return {
        "git_commit": git.commit,
        "git_dirty": git.dirty,
        "git_untracked": list(git.untracked),
        "user": user,
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {p: package_version(p) for p in ("kit", *_PACKAGES)},
        "device": device,
        "start_time": now(),
        "argv": list(sys.argv),
    }


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    """``config.json``: :meth:`kit.config.Config.to_dict` of the resolved config."""
    io.write_json(run_dir / CONFIG, config)


def write_env(run_dir: Path, env: dict[str, Any]) -> None:
    io.write_json(run_dir / ENV, env)


def update_env(run_dir: Path, records: dict[str, Any]) -> None:
    """Add ``records`` to ``env.json`` (what the run learned once it started: its weights,
    normalisation, face boxes), keeping what is there."""
    env = io.read_json(run_dir / ENV) if (run_dir / ENV).is_file() else {}
    io.write_json(run_dir / ENV, {**env, **records})


def write_status(
    run_dir: Path,
    status: str,
    epoch: int,
    error: str | None = None,
    progress: dict[str, Any] | None = None,
) -> None:
    """``status.json``: running / complete / interrupted / failed, the last finished epoch, the
    time; ``progress`` says where the epoch in training stands (the heartbeat)."""
    record: dict[str, Any] = {"status": status, "epoch": epoch, "updated": now()}
    # who writes it: the ledger shows a "running" run whose process is gone as incomplete
    record.update(pid=os.getpid(), host=socket.gethostname())
    optional = {"error": error, "progress": progress}
    record.update({k: v for k, v in optional.items() if v is not None})
    io.write_json(run_dir / STATUS, record)


def write_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """The whole ``metrics.csv``, one row per epoch (rewritten, so it is never half a row)."""
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=EPOCH_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: row[k] for k in EPOCH_COLUMNS} for row in rows)
    io.write_text(run_dir / METRICS, buf.getvalue())


def write_run_probs(path: Path, keys: pd.DataFrame, probs: np.ndarray, task: str | None) -> None:
    """``keys`` columns then the probabilities as CSV: ``p0..p17``, or ``task``'s columns."""
    cols = prob_columns(task)
    if probs.ndim != 2 or probs.shape[1] != len(cols):  # a programming error, not user input
        what = "probabilities" if task is None else f"{task} probabilities"
        raise ValueError(f"{what} must have shape (n, {len(cols)}), got {probs.shape}")
    table = pd.concat([keys.reset_index(drop=True), pd.DataFrame(probs, columns=cols)], axis=1)
    io.write_text(path, table.to_csv(index=False, float_format="%.8g", lineterminator="\n"))


def write_probs(path: Path, keys: pd.DataFrame, probs: np.ndarray) -> None:
    """``keys`` columns then ``p0..p17``, as CSV."""
    write_run_probs(path, keys, probs, None)


def write_task_probs(path: Path, keys: pd.DataFrame, probs: np.ndarray, task: str) -> None:
    """``keys`` columns then ``task``'s probability columns, as CSV."""
    write_run_probs(path, keys, probs, task)


def write_submission(
    probs_or_labels: Any, eval_df: pd.DataFrame, path: str | os.PathLike[str]
) -> Path:
    """``ImageID,ans`` in ``eval_df`` (info.csv) order; (n, 18) probabilities are argmaxed;
    ValueError on a row-count mismatch, NaN, or a class outside 0..17."""
    values = np.asarray(probs_or_labels)
    if values.ndim == 2:
        if values.shape[1] != NUM_CLASSES:
            raise ValueError(f"probabilities must have shape (n, 18), got {values.shape}")
        if not np.all(np.isfinite(values)):
            row = int(np.flatnonzero(~np.isfinite(values).all(1))[0])
            raise ValueError(f"probabilities hold NaN or inf (first at row {row})")
        labels = values.argmax(1)
    elif values.ndim == 1:
        labels = _checked_labels(values)
    else:
        raise ValueError(f"expected (n,) labels or (n, 18) probabilities, got {values.shape}")
    if len(labels) != len(eval_df):
        raise ValueError(
            f"{len(labels)} predictions for {len(eval_df)} eval rows; expected one per row"
        )
    image_id, ans = SUBMISSION_COLUMNS
    column = image_id if image_id in eval_df.columns else "image_id"
    if column not in eval_df.columns:
        raise ValueError(f"eval_df has no {image_id} column; found {list(eval_df.columns)}")
    table = pd.DataFrame({image_id: eval_df[column].to_numpy(), ans: labels.astype(np.int64)})
    return io.write_text(path, table.to_csv(index=False, lineterminator="\n"))


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """``summary.json``; refuses a summary without every key of :data:`SUMMARY_KEYS`."""
    missing = [k for k in SUMMARY_KEYS if k not in summary]
    if missing:
        raise ValueError(f"{run_dir / SUMMARY}: summary lacks {missing}; expected {SUMMARY_KEYS}")
    io.write_json(run_dir / SUMMARY, summary)


def _checked_labels(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind not in "iuf":
        raise ValueError(f"labels must be integer class ids, got dtype {values.dtype}")
    bad = ~np.isfinite(values) | (values != np.round(values))
    bad |= (values < 0) | (values >= NUM_CLASSES)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"label {values[row].item()!r} at row {row} is not a class id in 0..17")
    return values.astype(np.int64)


def drop_last(run_dir: str | os.PathLike[str]) -> int:
    """Delete a finished run's ``last.pt`` (only ``--resume`` needs it; ``best.pt`` stays);
    returns the bytes freed (0 when there was none)."""
    path = Path(run_dir) / LAST
    try:
        size = path.stat().st_size
        path.unlink()
    except FileNotFoundError:
        return 0
    return size


def write_pseudo_labels(run_dir: Path, rows: pd.DataFrame) -> None:
    """``pseudo_labels.csv`` (docs/run-folder.md, "Pseudo-labels"): one row per eval picture
    that passed the threshold, in info.csv order, :data:`PSEUDO_COLUMNS` (the predicted class
    and its probability) and the soft targets ``p0..p17`` when ``rows`` has them."""
    soft = PROB_COLUMNS if all(c in rows.columns for c in PROB_COLUMNS) else []
    table = rows[[*PSEUDO_COLUMNS, *soft]]
    io.write_text(
        run_dir / PSEUDO_LABELS, table.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    )


def pseudo_record(
    sources: list[tuple[Path, Path | None]],
    threshold: float,
    n_pictures: int,
    n_eval: int,
    targets: str = "hard",
) -> dict[str, Any]:
    """The ``summary.json`` entry (key ``kit.runfolder.names.PSEUDO_SUMMARY_KEY``) of a
    pseudo-labelled run; ``sources`` are (probability file, its run folder or None),
    ``targets`` what the pictures trained on (``Config.pseudo_targets``)."""
    return {
        "sources": [
            {"file": str(f.resolve()), "run": None if r is None else str(r.resolve())}
            for f, r in sources
        ],
        "threshold": threshold,
        "targets": targets,
        "n_pictures": n_pictures,
        "n_eval": n_eval,
    }


def write_test_probs(path: str | Path, image_ids: Any, probs: np.ndarray) -> Path:
    """A ``test_probs.csv``-shaped file (``image_id,p0..p17``) of any 18-way test
    probabilities, e.g. an ensemble's (``result.test_ids``, ``result.test_probs``), for
    ``Config.pseudo_labels``."""
    path = Path(path)
    write_probs(path, pd.DataFrame({TEST_KEYS[0]: list(image_ids)}), np.asarray(probs))
    return path


def write_tracker_id(run_dir: Path, tracker: str, run_id: str) -> None:
    """Record (or replace) ``tracker``'s run id in ``trackers.json``."""
    ids = read_tracker_ids(run_dir)
    if ids.get(tracker) != run_id:
        io.write_json(Path(run_dir) / TRACKER_IDS, {**ids, tracker: run_id})
