"""Experiment trackers that mirror a run folder: TensorBoard, W&B, MLflow (docs/tracking.md).

``Config(track="tensorboard,wandb,mlflow")`` (``--track``) opens them for a run; the packages
come with ``pip install -e ".[track]"``. Importing this package imports none of them: each is
imported when its tracker opens.
"""

from kit.tracking import backends  # noqa: F401 (fill TRACKERS)
from kit.tracking.core import (
    EXTRA,
    TRACKERS,
    Hook,
    Pruned,
    Tracker,
    Trackers,
    TrackerSpec,
    TrackerStart,
    check_track,
    epoch_metrics,
    flatten,
    open_trackers,
    summary_metrics,
    track_names,
)

__all__ = [
    "EXTRA",
    "TRACKERS",
    "Hook",
    "Pruned",
    "Tracker",
    "TrackerSpec",
    "TrackerStart",
    "Trackers",
    "check_track",
    "epoch_metrics",
    "flatten",
    "open_trackers",
    "summary_metrics",
    "track_names",
]
