"""``trackers.json``: each experiment tracker's run id (docs/tracking.md), read back on
``--resume`` so the same W&B / MLflow run continues. Kept apart from the run folder's other
files: it exists only for runs with ``--track``.
"""

from __future__ import annotations

from pathlib import Path

from kit import io

__all__ = ["TRACKER_IDS", "read_tracker_ids", "write_tracker_id"]

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
