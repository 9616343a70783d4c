"""The run folder (docs/run-folder.md): creation, environment, status, metrics, probabilities.

Every file is written atomically through :mod:`kit.io`.
"""

from __future__ import annotations

import csv
import getpass
import io as _io
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kit import io

__all__ = [
    "METRIC_COLUMNS",
    "create_run_dir",
    "env_info",
    "package_version",
    "read_metrics",
    "write_metrics",
    "write_probs",
    "write_status",
]

METRIC_COLUMNS = (
    "epoch",
    "train_loss",
    "val_loss",
    "val_macro_f1",
    "val_accuracy",
    "val_f1_mask",
    "val_f1_gender",
    "val_f1_age",
    "lr",
    "seconds",
)
_PACKAGES = ("torch", "torchvision", "timm", "albumentations", "numpy", "pandas", "scikit-learn")


def now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def create_run_dir(output_dir: str | Path, name: str) -> Path:
    """A new ``<output_dir>/<YYYYmmdd-HHMMSS>_<name>[-k]`` folder; never an existing one."""
    parent = Path(output_dir)
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # read-only, full, or a file where the folder should be
        raise io.output_error(parent, err) from err
    stem = f"{datetime.now():%Y%m%d-%H%M%S}_{name}"
    for k in range(1, 10_000):
        path = parent / (stem if k == 1 else f"{stem}-{k}")
        try:
            path.mkdir()  # atomic: of two racing runs exactly one gets each name
            return path
        except FileExistsError:
            continue
        except OSError as err:
            raise io.output_error(path, err) from err
    raise FileExistsError(f"no free run folder name for {parent / stem}")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def package_version(package: str) -> str | None:
    """The installed version of ``package``, or None when it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def env_info(device: str) -> dict[str, Any]:
    """Git commit and dirty flag of the cwd's repository, versions, machine, command line."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = None
    return {
        "git_commit": _git("rev-parse", "HEAD") or None,
        "git_dirty": None if status is None else bool(status),
        "user": user,
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {p: package_version(p) for p in ("kit", *_PACKAGES)},
        "device": device,
        "start_time": now(),
        "argv": list(sys.argv),
    }


def write_status(run_dir: Path, status: str, epoch: int, error: str | None = None) -> None:
    """``status.json``: running / complete / interrupted / failed, the epoch, the time."""
    record: dict[str, Any] = {"status": status, "epoch": epoch, "updated": now()}
    # who writes it: the ledger shows a "running" run whose process is gone as incomplete
    record.update(pid=os.getpid(), host=socket.gethostname())
    if error is not None:
        record["error"] = error
    io.write_json(run_dir / "status.json", record)


def write_metrics(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    """The whole ``metrics.csv``, one row per epoch (rewritten, so it is never half a row)."""
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: row[k] for k in METRIC_COLUMNS} for row in rows)
    io.write_text(run_dir / "metrics.csv", buf.getvalue())


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """Rows of an existing ``metrics.csv`` (empty when there is none)."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return []
    return pd.read_csv(path).to_dict("records")


def write_probs(path: Path, keys: pd.DataFrame, probs: np.ndarray) -> None:
    """``keys`` columns then ``p0..p17``, as CSV."""
    columns = [f"p{k}" for k in range(probs.shape[1])]
    table = pd.concat([keys.reset_index(drop=True), pd.DataFrame(probs, columns=columns)], axis=1)
    io.write_text(path, table.to_csv(index=False, float_format="%.8g", lineterminator="\n"))
