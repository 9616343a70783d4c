"""Experiment trackers that mirror a run folder: TensorBoard, W&B, MLflow (docs/tracking.md).

``--track tensorboard,wandb,mlflow``; each package is imported only when its tracker opens.
:class:`Trackers` forwards the epoch loop's calls (epochs, summary, artifacts, status) to every
open tracker and epoch hook (``kit.tune``'s pruning check is one), and stores their run ids in
``trackers.json``. A tracker that raises is logged once and dropped; only :class:`Pruned` goes
through. The run folder stays the source of truth.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

from kit import runfolder
from kit.config import Config
from kit.errors import ConfigError
from kit.registry import Registry

__all__ = [
    "EVENTS_DIR",
    "EXTRA",
    "TRACKERS",
    "Hook",
    "MlflowTracker",
    "Pruned",
    "TensorBoardTracker",
    "Tracker",
    "TrackerSpec",
    "TrackerStart",
    "Trackers",
    "WandbTracker",
    "check_mlflow_uri",
    "check_track",
    "epoch_metrics",
    "flatten",
    "missing_package",
    "open_trackers",
    "summary_metrics",
    "track_names",
]


_log = logging.getLogger("kit")

#: The pip extra that installs every tracker package (and Optuna).
EXTRA = 'pip install -e ".[track]"'


class Pruned(Exception):
    """Raised by an epoch hook to stop the run early; the run folder is marked ``pruned``."""


@dataclass(frozen=True)
class TrackerStart:
    """What a tracker is opened with."""

    run_dir: Path
    name: str  # the run folder's name: the tracker run's name
    config: dict[str, Any]  # flattened (``loss_kwargs.gamma``), JSON values
    study: str | None = None  # a search's study name: a group in the tracker
    mlflow_uri: str | None = None
    resume_id: str | None = None  # this tracker's run id from trackers.json, when resuming
    first_epoch: int = 1  # the first epoch this process will log


class Tracker:
    """The calls a tracker receives, in this order; each does nothing unless overridden."""

    #: The tracker run's id, stored in trackers.json so a resumed run continues it.
    run_id: str | None = None

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        """``metrics`` of one finished epoch (:func:`epoch_metrics` names)."""

    def log_summary(self, summary: Mapping[str, float]) -> None:
        """The final scores (:func:`summary_metrics` names)."""

    def log_artifacts(self, files: Sequence[Path]) -> None:
        """The end-of-run files (pictures, submission) to keep with the tracker run."""

    def close(self, status: str) -> None:
        """The run ended as ``status`` (complete, pruned, interrupted, failed)."""


@dataclass(frozen=True)
class TrackerSpec:
    """A registered tracker: the package it needs and how to open it."""

    package: str
    open: Callable[[TrackerStart], Tracker]


def missing_package(name: str) -> str | None:
    """The package tracker ``name`` needs when it is not installed, else None."""
    package = TRACKERS.get(name).package
    return None if importlib.util.find_spec(package) is not None else package


def track_names(track: str | None) -> list[str]:
    """The tracker names of a ``--track`` value (comma list; none/empty = no tracker)."""
    if track is None or track.strip().lower() in ("", "none"):
        return []
    return [t.strip() for t in track.split(",") if t.strip()]


def check_track(track: str | None, field: str | None = "track", cfg: Any = None) -> None:
    """ValueError naming a ``--track`` entry that is unknown or whose package is missing (the
    tracker registry's check of the config field ``track``)."""
    for name in track_names(track):
        if name not in TRACKERS:
            raise ValueError(f"config field 'track': {TRACKERS.unknown_message(name)}")
        package = missing_package(name)
        if package is not None:
            raise ValueError(
                f"config field 'track': tracker {name!r} needs the {package} package, "
                f"which is not installed; install the tracking extra: {EXTRA}"
            )
    if "mlflow" in track_names(track) and getattr(cfg, "mlflow_uri", None):
        check_mlflow_uri(cfg.mlflow_uri)


#: The URI schemes MLflow's tracking client has a store for (a folder path has none, or one
#: drive letter on Windows); plugins add theirs under the ``mlflow.tracking_store`` entry point.
_MLFLOW_SCHEMES = {"file", "http", "https", "sqlite", "postgresql", "mysql", "mssql"}
_MLFLOW_SCHEMES |= {"databricks", "databricks-uc", "uc"}


def check_mlflow_uri(uri: str) -> None:
    """ConfigError naming ``--mlflow-uri`` when MLflow has no tracking store for ``uri``'s
    scheme; checked before the run starts (an opened tracker that fails is only dropped)."""
    scheme = urlsplit(uri).scheme.lower().partition("+")[0]
    plugins = {ep.name for ep in importlib.metadata.entry_points(group="mlflow.tracking_store")}
    if len(scheme) > 1 and scheme not in _MLFLOW_SCHEMES | plugins:
        raise ConfigError(
            f"config field 'mlflow_uri' (--mlflow-uri) is {uri!r}: MLflow has no tracking store "
            f"for the scheme {scheme!r}; expected http(s)://host:5000, sqlite:///path/mlflow.db, "
            "file:///path/mlruns, postgresql://user@host/db, databricks or a folder path"
        )


TRACKERS: Registry[TrackerSpec] = Registry(
    "tracker", describe=lambda name, spec: f"{name} (needs {spec.package})", check=check_track
)


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists become JSON text, other values stay."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (list, tuple, Mapping)):
            out[f"{prefix}{key}"] = json.dumps(value)
        else:
            out[f"{prefix}{key}"] = value
    return out


def epoch_metrics(row: Mapping[str, Any]) -> dict[str, float]:
    """A metrics.csv row as tracker names: ``train/loss``, ``val/macro_f1``, ``lr``, ..."""
    out: dict[str, float] = {}
    for key, value in row.items():
        if key == "epoch" or value is None:
            continue
        split, _, rest = key.partition("_")
        name = f"{split}/{rest}" if split in ("train", "val") and rest else key
        out["epoch_seconds" if key == "seconds" else name] = float(value)
    return out


def summary_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """The number-valued entries of summary.json as ``final/<key>`` (no confusion, folds)."""
    return {
        f"final/{k}": float(v)
        for k, v in summary.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


#: An epoch hook: opened like a tracker, told the same things (it may raise Pruned).
Hook = Callable[[TrackerStart], Tracker]


class Trackers:
    """Several open trackers behind one tracker's calls; see the module docstring."""

    def __init__(self, entries: Sequence[tuple[str, Tracker]] = ()) -> None:
        self._entries = list(entries)

    def open(
        self, cfg: Config, run_dir: Path, hooks: Sequence[Hook] = (), first_epoch: int = 1
    ) -> Trackers:
        """Add the trackers of :func:`open_trackers`; returns self."""
        self._entries += open_trackers(cfg, run_dir, hooks, first_epoch)._entries
        return self

    def _each(self, what: str, call: Callable[[Tracker], Any]) -> None:
        for entry in list(self._entries):
            name, tracker = entry
            try:
                call(tracker)
            except Pruned:
                raise
            except Exception as err:
                self._entries.remove(entry)
                _drop(name, what, err)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        """One metrics.csv row (a finished epoch)."""
        metrics = epoch_metrics(row)
        self._each("log_epoch", lambda t: t.log_epoch(int(row["epoch"]), metrics))

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        metrics = summary_metrics(summary)
        self._each("log_summary", lambda t: t.log_summary(metrics))

    def log_artifacts(self, files: Sequence[Path]) -> None:
        """Those of ``files`` that exist."""
        present = [Path(f) for f in files if Path(f).is_file()]
        self._each("log_artifacts", lambda t: t.log_artifacts(present))

    def close(self, status: str) -> None:
        """The run ended as ``status``; every tracker is closed, then none is left."""
        self._each("close", lambda t: t.close(status))
        self._entries = []


def _drop(name: str, what: str, err: BaseException, flag: str = "") -> None:
    _log.warning(
        "tracker %s failed (%s: %s: %s)%s; training goes on without it, the run folder keeps "
        "everything",
        name,
        what,
        type(err).__name__,
        str(err).splitlines()[0] if str(err) else "",
        f"; check {flag}" if flag else "",
    )


def open_trackers(
    cfg: Config, run_dir: Path, hooks: Sequence[Hook] = (), first_epoch: int = 1
) -> Trackers:
    """The ``cfg.track`` trackers and ``hooks`` of the run in ``run_dir``, opened.

    A tracker that fails to open is warned about and skipped; its package being missing was
    already refused by ``Config.validate``.
    """
    run_dir = Path(run_dir)
    ids = runfolder.read_tracker_ids(run_dir) if cfg.resume else {}
    start = TrackerStart(run_dir, run_dir.name, flatten(cfg.to_dict()), cfg.study, cfg.mlflow_uri)
    entries: list[tuple[str, Tracker]] = []
    openers = [(name, TRACKERS.use(name).open) for name in track_names(cfg.track)]
    openers += [(getattr(h, "__name__", f"hook{k}"), h) for k, h in enumerate(hooks)]
    for name, opener in openers:
        try:
            tracker = opener(replace(start, resume_id=ids.get(name), first_epoch=first_epoch))
            if tracker.run_id is not None:
                runfolder.write_tracker_id(run_dir, name, tracker.run_id)
        except Exception as err:
            uri = cfg.mlflow_uri if name == "mlflow" else None  # the string it opened
            _drop(name, "open", err, f"--mlflow-uri {uri!r}" if uri else "")
            continue
        entries.append((name, tracker))
    return Trackers(entries)


#: The folder of TensorBoard's event files, inside the run folder.
EVENTS_DIR = "tensorboard"

#: kit status -> MLflow run status.
_MLFLOW_STATUS = {"complete": "FINISHED", "failed": "FAILED"}
# MLflow limits one parameter value to 6000 characters.
_MLFLOW_PARAM_LIMIT = 6000


class TensorBoardTracker(Tracker):
    """Event files in ``<run folder>/tensorboard/``: scalars per epoch, the config as text,
    the PNGs as images."""

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
    """One W&B run per run folder, its files under ``<run folder>/wandb/`` (``WANDB_MODE``,
    ``WANDB_PROJECT``: docs/tracking.md); a resumed run continues the stored id."""

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
    """One MLflow run per run folder, in experiment ``kit`` (or the search's study), at
    ``--mlflow-uri`` (else MLflow's default). ``MlflowClient``, not the global active run, so
    several runs in one process (``kit.tune``) never mix. A resumed run reopens the stored id.
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
