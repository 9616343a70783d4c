"""The run-folder files of the pictures and the experiment trackers (docs/tracking.md).

Kept apart from :mod:`kit.runfolder.files` so the tracker mirror of a run is one small,
separate contract: the two PNGs written at the end of training, and ``trackers.json``, the id
of each tracker's run, read back on ``--resume`` so the same W&B / MLflow run continues.
"""

from __future__ import annotations

from pathlib import Path

from kit import io

__all__ = ["CONFUSION_PNG", "CURVES_PNG", "TRACKER_IDS", "read_tracker_ids", "write_tracker_id"]

#: The per-epoch curves (loss, macro F1, per-head F1, lr) and the best epoch's confusion matrix.
CURVES_PNG, CONFUSION_PNG = "curves.png", "confusion.png"
#: ``{"wandb": "<run id>", "mlflow": "<run id>"}``: only trackers that have a run id.
TRACKER_IDS = "trackers.json"


def read_tracker_ids(run_dir: Path) -> dict[str, str]:
    """Tracker name -> its run id, from ``trackers.json`` (empty when there is none)."""
    path = Path(run_dir) / TRACKER_IDS
    if not path.is_file():
        return {}
    ids = io.read_json(path)
    if not isinstance(ids, dict) or not all(isinstance(v, str) for v in ids.values()):
        raise ValueError(f"{path}: expected a mapping of tracker name -> run id text")
    return ids


def write_tracker_id(run_dir: Path, tracker: str, run_id: str) -> None:
    """Record (or replace) ``tracker``'s run id in ``trackers.json``, atomically."""
    ids = read_tracker_ids(run_dir)
    if ids.get(tracker) != run_id:
        io.write_json(Path(run_dir) / TRACKER_IDS, {**ids, tracker: run_id})
