"""One run folder from start to end: its data, model and resumed ``last.pt`` prepared before
the folder is written (:mod:`kit.train.setup`), the folder opened, the epochs trained
(:mod:`kit.train.loop`), then its end: ``best.pt``'s probabilities, the refit, the submission,
``summary.json``, the pictures (curves, confusion, mistakes) and the trackers told. A run
stopped early (Ctrl-C, SIGTERM, a pruning hook, an error) records its status, draws the curves
of the epochs it finished and says how to resume.

Rank 0 alone writes and draws (the other processes' :class:`~kit.tracking.Trackers` are empty).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import pandas as pd
import torch

from kit import runfolder as rundir
from kit.cli import INTERRUPTED, TERMINATED, Terminated
from kit.config import Config
from kit.device import cpu_info, pick_amp
from kit.labels import TASKS, VALUE_NAMES, class_name
from kit.metrics import score_probs, selection_score
from kit.models import Weights, head_task
from kit.plot import confusion_png, curves_png, mistakes_sheet
from kit.progress import in_notebook
from kit.runfolder import LAST, Run, read_run
from kit.runfolder.read import nothing_to_train
from kit.tracking import Hook, Pruned
from kit.train import distributed
from kit.train.checkpoint import last_epoch, load
from kit.train.forward import predictor
from kit.train.loop import refit, train_run
from kit.train.setup import Job, Ready, prepare

__all__ = ["complete", "finish", "fit_run", "open_folder", "stop"]

_log = logging.getLogger("kit")


def open_folder(
    cfg: Config,
    name: str,
    device: torch.device,
    ctx: distributed.DistContext,
    train_transform: A.BasicTransform | None = None,
) -> Path:
    """A new folder ``<output_dir>/<ts>_<name>`` (or ``cfg.resume``, reopened) with its
    config.json and env.json (a resumed folder's lists every resumption) and, in a new folder,
    what re-creates the run: recipe.py, git.diff, train_transform.json for a custom
    ``train_transform`` (the Config cannot name it), the registered pieces of one's own."""
    folder = Path(cfg.resume) if cfg.resume else rundir.create_run_dir(cfg.output_dir, name)
    if not cfg.resume:
        rundir.write_source(folder)
        if train_transform is not None:
            rundir.write_train_transform(folder, train_transform)
    # on a CPU the thread count and the processor change the rounding of the sums, so they
    # are part of a result
    env = {
        **rundir.env_info(str(device)),
        "processes": ctx.world_size,
        "torch_threads": torch.get_num_threads(),
        **cpu_info(),
    }
    env["amp_dtype"] = pick_amp(cfg, device).name  # what autocast computes in on this device
    if not cfg.resume:  # the registered pieces of one's own, for every tool after training
        env["code"] = rundir.write_code(folder, cfg)
    first = rundir.read_env(folder) if cfg.resume else {}
    if first:
        env = {**first, "resumed": [*first.get("resumed", []), env]}
    rundir.write_config(folder, cfg.to_dict())
    rundir.write_env(folder, env)
    return folder


def fit_run(
    cfg: Config,
    train_transform: A.BasicTransform | None,
    ctx: distributed.DistContext,
    device: torch.device,
    weights: Weights | None = None,
    hooks: Sequence[Hook] = (),
) -> Run:
    """One run folder, trained by this process (of one or several): rank 0 writes, prints."""
    if not ctx.is_main:
        cfg = cfg.replace(quiet=True)
    distributed.setup_logging(cfg.quiet)
    if nothing_to_train(cfg):
        done = read_run(cfg.resume)
        _log.warning(
            f"{done.run_dir} is complete (best epoch {done.best_epoch}, val macro F1 "
            f"{done.best_score:.4f}): nothing to train; to train longer, start a new run with "
            "more --epochs"
        )
        return done
    if cfg.resume:  # the transform last.pt was trained under: given again, or re-created
        train_transform = rundir.resumed_train_transform(cfg.resume, train_transform)
    # bad data, a bad model or a damaged last.pt is refused before the folder is written
    ready = prepare(cfg, train_transform, device, ctx, weights)
    run_dir = distributed.broadcast(
        open_folder(cfg, cfg.name, device, ctx, train_transform) if ctx.is_main else None, ctx
    )
    job, state = Job(cfg, run_dir, device, ctx, weights, tuple(hooks)), ready.state
    job.write_status("running", state.epoch)
    try:
        train_run(job, ready)
        return finish(job, ready)
    except Pruned as why:
        stop(job, state.epoch, "pruned")
        _log.info("pruned after epoch %d (%s)", state.epoch, why)
        raise
    except KeyboardInterrupt as err:
        # what is on disk, not state.epoch: an epoch is counted before its last.pt is written
        saved = last_epoch(run_dir / LAST)
        stop(job, saved or 0, "interrupted")
        notebook = in_notebook()  # a kernel interrupt: the kernel lives on, so no exit code
        how_to = f"kit.fit(cfg.replace(resume={str(run_dir)!r}))" if notebook else "--resume"
        if saved:
            hint = f"last.pt holds epoch {saved} of {cfg.epochs}: continue with {how_to}"
            hint += "" if notebook else f" {run_dir}"
        else:
            hint = "no epoch was saved, so there is nothing to resume: start the run again"
        terminated = isinstance(err, Terminated)
        _log.warning("%s; %s", "terminated (SIGTERM)" if terminated else "interrupted", hint)
        if notebook:
            raise
        raise SystemExit(TERMINATED if terminated else INTERRUPTED) from None
    except Exception as err:
        try:
            stop(job, state.epoch, "failed", f"{type(err).__name__}: {err}")
        except OSError:  # a full disk must not hide the error that stopped the run
            _log.warning("could not record the failure in %s", run_dir / rundir.STATUS)
        raise
    finally:
        ready.trainer.close()


def finish(job: Job, ready: Ready) -> Run:
    """Reload ``best.pt``, write its probabilities, refit (``cfg.refit``), write the test
    probabilities and submission of the refit or best weights (when there is an eval set) and
    ``summary.json``, mark the run complete; rank 0 alone writes. A per-task run writes its
    task's probabilities and no submission (it predicts no class)."""
    cfg, run_dir, t0, main = job.cfg, job.run_dir, time.time(), job.ctx.is_main
    splits, rows, model = ready.splits, ready.rows, ready.trainer.parts.evaluated
    predict = predictor(model, cfg, ready.pictures, job.ctx)  # probabilities, on every process
    task = head_task(cfg.head)
    distributed.barrier(job.ctx)  # rank 0 has written best.pt
    best = load(run_dir / rundir.BEST, job.device)
    model.load_state_dict(best["model"])
    val_probs = predict(splits.val)
    if main:
        keys = splits.val[["image_id", "person_id", "label"]].assign(fold=splits.fold)
        rundir.write_run_probs(run_dir / rundir.VAL_PROBS, keys, val_probs, task)
        if task is None:  # 18-way probabilities: the true and the predicted class
            _mistakes(run_dir, splits.val, val_probs)
    weights = rundir.BEST
    if cfg.refit != "none":  # validated above; the test set gets the refit weights
        predict, weights = refit(job, ready, best), rundir.REFIT
    if splits.eval is not None:
        test_probs = predict(splits.eval)
        if main:
            test_keys = splits.eval[["image_id"]]
            rundir.write_run_probs(run_dir / rundir.TEST_PROBS, test_keys, test_probs, task)
            if task is None:
                rundir.write_submission(test_probs, splits.eval, run_dir / rundir.SUBMISSION)
    scores, _ = score_probs(splits.val["label"], val_probs, task)
    summary = {
        "name": cfg.name,
        "status": "complete",
        "best_epoch": int(best["epoch"]),
        "epochs_run": len(rows),
        **{f"val_{k}": v for k, v in scores.items() if k != "confusion"},
        "confusion": scores["confusion"],
        "n_val": len(splits.val),
        "submission_weights": weights,
        "seconds": round(sum(r["seconds"] for r in rows) + time.time() - t0, 3),
        **({} if task is None else {"task": task}),
        **({} if splits.pseudo is None else {rundir.PSEUDO_SUMMARY_KEY: splits.pseudo.record}),
    }
    if main:
        rundir.write_summary(run_dir, summary)
    job.write_status("complete", ready.state.epoch)
    if main and not cfg.keep_last:
        rundir.drop_last(run_dir)  # only --resume needs it, and a complete run trains no more
    complete(job, rows, summary)
    chosen = selection_score(scores, task)
    what = "macro F1" if task is None else f"{task} F1"
    f1 = {h: summary.get(f"val_f1_{h}") for h in TASKS}
    heads = ", ".join(f"{h} {v:.3f}" for h, v in f1.items() if v is not None)
    submission = run_dir / rundir.SUBMISSION
    _log.info(
        f"done: best epoch {summary['best_epoch']}, val {what} {chosen:.4f} (accuracy "
        f"{summary['val_accuracy']:.4f}{'; ' + heads if heads else ''}) -> {run_dir}"
        + (f"\nsubmission: {submission}" if submission.is_file() else "")
    )
    return Run(run_dir, "complete", cfg, summary, chosen, summary["best_epoch"])


def _mistakes(run_dir: Path, val: pd.DataFrame, probs: np.ndarray) -> None:
    """The mistakes sheet; a picture that cannot be drawn only warns (the run is complete)."""
    path = run_dir / rundir.VAL_MISTAKES
    try:
        title = f"{run_dir.name}: most confident mistakes"
        mistakes_sheet(val["path"].tolist(), val["label"].to_numpy(), probs, path, title=title)
    except (OSError, ValueError) as err:
        _log.warning("no mistakes sheet %s: %s", path, err)


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
        confusion_png(
            summary["confusion"], run_dir / rundir.VAL_CONFUSION, class_names=names, title=title
        )
    job.trackers.log_summary(summary)
    files = (rundir.VAL_CONFUSION, rundir.CURVES_PNG, rundir.SUBMISSION)
    job.trackers.log_artifacts([run_dir / f for f in files])
    job.trackers.close("complete")


def stop(job: Job, epoch: int, status: str, error: str | None = None) -> None:
    """A run ending early as ``status`` (pruned, interrupted, failed) after ``epoch``:
    status.json, the curves of the epochs it finished, the trackers told."""
    job.write_status(status, epoch, error)
    if job.ctx.is_main:
        _curves(job, rundir.read_metrics(job.run_dir))
    job.trackers.close(status)
