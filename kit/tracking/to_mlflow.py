"""MLflow: one MLflow run per run folder, in experiment ``kit`` (or the search's study).

``--mlflow-uri`` names the tracking server or store (``http://host:5000``, ``sqlite:///x.db``);
without it MLflow's own default applies (``MLFLOW_TRACKING_URI``, else a local store in the
working directory). Uses ``MlflowClient`` (no global "active run"), so several runs in one
process (``kit.tune``) never mix. A resumed run reopens the stored run id.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from kit.tracking.base import TRACKERS, Tracker, TrackerSpec, TrackerStart

__all__ = ["MlflowTracker"]

#: kit status -> MLflow run status.
_STATUS = {"complete": "FINISHED", "failed": "FAILED"}
# MLflow limits one parameter value to 6000 characters.
_PARAM_LIMIT = 6000


class MlflowTracker(Tracker):
    """Params (the flattened config), metrics per epoch, summary metrics, artifact files."""

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
        params = [Param(k, str(v)[:_PARAM_LIMIT]) for k, v in start.config.items()]
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
        self.client.set_terminated(self.run_id, _STATUS.get(status, "KILLED"))


TRACKERS.register("mlflow", TrackerSpec("mlflow", MlflowTracker))
