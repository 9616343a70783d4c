"""kit's trackers: TensorBoard, Weights & Biases, MLflow, registered in ``TRACKERS``.

Each imports its package (tensorboard, wandb, mlflow) only when a run opens it, so importing
this module costs none of them.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from kit.tracking.core import TRACKERS, Tracker, TrackerSpec, TrackerStart

__all__ = ["EVENTS_DIR", "MlflowTracker", "TensorBoardTracker", "WandbTracker"]

#: The folder of TensorBoard's event files, inside the run folder.
EVENTS_DIR = "tensorboard"

#: kit status -> MLflow run status.
_MLFLOW_STATUS = {"complete": "FINISHED", "failed": "FAILED"}
# MLflow limits one parameter value to 6000 characters.
_MLFLOW_PARAM_LIMIT = 6000


class TensorBoardTracker(Tracker):
    """Event files in ``<run folder>/tensorboard/``, so ``tensorboard --logdir runs`` lists every
    run (a K-fold's fold runs one level further down): scalars per epoch, the config as text,
    the PNGs as images (files stay in the folder)."""

    def __init__(self, start: TrackerStart) -> None:
        from torch.utils.tensorboard import SummaryWriter  # optional: the tensorboard package

        # purge_step: a resumed run hides events a killed process logged past its checkpoint
        purge = start.first_epoch if start.first_epoch > 1 else None
        self.writer = SummaryWriter(str(start.run_dir / EVENTS_DIR), purge_step=purge)
        self.step = start.first_epoch - 1
        if purge is None:
            text = json.dumps(start.config, indent=1, default=str)
            self.writer.add_text("config", f"```\n{text}\n```", 0)

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, epoch)
        self.writer.flush()  # a live `tensorboard` shows the epoch now, not at the end
        self.step = epoch

    def log_summary(self, summary: Mapping[str, float]) -> None:
        for key, value in summary.items():
            self.writer.add_scalar(key, value, self.step)

    def log_artifacts(self, files: Sequence[Path]) -> None:
        for path in files:
            if path.suffix.lower() == ".png":
                with Image.open(path) as img:
                    pixels = np.asarray(img.convert("RGB"))
                self.writer.add_image(path.stem, pixels, self.step, dataformats="HWC")

    def close(self, status: str) -> None:
        self.writer.add_text("status", status, self.step)
        self.writer.close()


class WandbTracker(Tracker):
    """One W&B run per run folder, its files under ``<run folder>/wandb/``: config, per-epoch
    metrics (step = epoch), summary, pictures and a run-files artifact.

    ``WANDB_MODE=offline`` works with no network (``wandb sync <run folder>/wandb/offline-run-*``
    uploads later); ``WANDB_PROJECT`` / ``WANDB_ENTITY`` choose where it goes (default project
    kit). A resumed run passes the stored id with ``resume="allow"``: the same W&B run continues.
    """

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


class MlflowTracker(Tracker):
    """One MLflow run per run folder, in experiment ``kit`` (or the search's study): params (the
    flattened config), metrics per epoch, summary metrics, artifact files.

    ``--mlflow-uri`` names the tracking server or store (``http://host:5000``, ``sqlite:///x.db``);
    without it MLflow's own default applies (``MLFLOW_TRACKING_URI``, else a local store in the
    working directory). Uses ``MlflowClient`` (no global "active run"), so several runs in one
    process (``kit.tune``) never mix. A resumed run reopens the stored run id.
    """

    def __init__(self, start: TrackerStart) -> None:
        from mlflow.entities import Param  # optional: the mlflow package
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(start.mlflow_uri)
        if start.resume_id:
            self.run_id = start.resume_id
            self.client.update_run(self.run_id, status="RUNNING")
            return
        experiment = start.study or "kit"
        found = self.client.get_experiment_by_name(experiment)
        exp_id = found.experiment_id if found else self.client.create_experiment(experiment)
        tags = {"kit.run_dir": str(start.run_dir.resolve())}
        run = self.client.create_run(exp_id, run_name=start.name, tags=tags)
        self.run_id = run.info.run_id
        params = [Param(k, str(v)[:_MLFLOW_PARAM_LIMIT]) for k, v in start.config.items()]
        for i in range(0, len(params), 100):  # log_batch takes at most 100 params a call
            self.client.log_batch(self.run_id, params=params[i : i + 100])

    def _metrics(self, metrics: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        batch = [Metric(k, v, stamp, step) for k, v in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        self._metrics(metrics, epoch)

    def log_summary(self, summary: Mapping[str, float]) -> None:
        self._metrics(summary, 0)

    def log_artifacts(self, files: Sequence[Path]) -> None:
        for path in files:
            self.client.log_artifact(self.run_id, str(path))

    def close(self, status: str) -> None:
        self.client.set_tag(self.run_id, "kit.status", status)
        self.client.set_terminated(self.run_id, _MLFLOW_STATUS.get(status, "KILLED"))


TRACKERS.register("tensorboard", TrackerSpec("tensorboard", TensorBoardTracker))
TRACKERS.register("wandb", TrackerSpec("wandb", WandbTracker))
TRACKERS.register("mlflow", TrackerSpec("mlflow", MlflowTracker))
