"""The end of a run as a person and the trackers see it: the curves and confusion pictures in
the run folder, and the trackers' summary, artifacts and final status (docs/tracking.md).

Rank 0 alone draws and tracks (the other processes' :class:`~kit.tracking.Trackers` are empty).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kit import runfolder as rundir
from kit.labels import VALUE_NAMES, class_name
from kit.plot import confusion_png, curves_png

if TYPE_CHECKING:
    from kit.train.checkpoint import TrainState
    from kit.train.loop import Job

__all__ = ["complete", "stop"]


def _curves(job: Job, rows: list[dict[str, Any]]) -> None:
    if job.ctx.is_main and rows:
        curves_png(rows, job.run_dir / rundir.CURVES_PNG, title=job.run_dir.name)


def complete(job: Job, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
    """A finished run: both pictures, then the trackers' summary, artifacts and close."""
    run_dir = job.run_dir
    _curves(job, rows)
    if job.ctx.is_main:
        task = summary.get("task")  # a per-task run's confusion is its task's values
        k = len(summary["confusion"])
        names = [f"{c} {class_name(c) if task is None else VALUE_NAMES[task][c]}" for c in range(k)]
        what = "macro F1" if task is None else f"{task} F1"
        title = f"{run_dir.name}: val {what} {rundir.run_score(summary):.4f}"
        confusion_png(summary["confusion"], run_dir / rundir.VAL_CONFUSION, class_names=names,
                      title=title)  # fmt: skip
    job.trackers.log_summary(summary)
    files = (rundir.VAL_CONFUSION, rundir.CURVES_PNG, rundir.SUBMISSION)
    job.trackers.log_artifacts([run_dir / f for f in files])
    job.trackers.close("complete")


def stop(job: Job, state: TrainState, status: str, error: str | None = None) -> None:
    """A run ending early as ``status`` (pruned, interrupted, failed): status.json, the curves
    of the epochs it finished, the trackers told."""
    job.write_status(status, state.epoch, error)
    if job.ctx.is_main:
        _curves(job, rundir.read_metrics(job.run_dir))
    job.trackers.close(status)
