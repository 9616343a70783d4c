"""Weights & Biases: one W&B run per run folder, its files under ``<run folder>/wandb/``.

``WANDB_MODE=offline`` works with no network (``wandb sync <run folder>/wandb/offline-run-*``
uploads later); ``WANDB_PROJECT`` / ``WANDB_ENTITY`` choose where it goes (default project kit).
A resumed run passes the stored id with ``resume="allow"``: the same W&B run continues.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from kit.tracking.base import TRACKERS, Tracker, TrackerSpec, TrackerStart

__all__ = ["WandbTracker"]


class WandbTracker(Tracker):
    """Config, per-epoch metrics (step = epoch), summary, pictures and a run-files artifact."""

    def __init__(self, start: TrackerStart) -> None:
        import wandb  # optional: the wandb package

        self.wandb = wandb
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "kit"),
            name=start.name,
            group=start.study,
            dir=str(start.run_dir),
            config=start.config,
            id=start.resume_id,
            resume="allow" if start.resume_id else None,
            reinit="create_new",  # kit.tune trains several runs in one process
            settings=wandb.Settings(console="off", silent=True),
        )
        self.run_id = self.run.id
        self.step = start.first_epoch - 1

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self.run.log(dict(metrics), step=epoch)
        self.step = epoch

    def log_summary(self, summary: Mapping[str, float]) -> None:
        self.run.summary.update(dict(summary))

    def log_artifacts(self, files: Sequence[Path]) -> None:
        images = {p.stem: self.wandb.Image(str(p)) for p in files if p.suffix.lower() == ".png"}
        if images:
            self.run.log(images, step=max(self.step, 0))
        artifact = self.wandb.Artifact(f"run-files-{self.run.id}", type="run-files")
        for path in files:
            artifact.add_file(str(path))
        self.run.log_artifact(artifact)

    def close(self, status: str) -> None:
        self.run.summary["status"] = status
        self.run.finish(exit_code=0 if status == "complete" else 1)


TRACKERS.register("wandb", TrackerSpec("wandb", WandbTracker))
