"""``fit(cfg) -> Run``: one run folder, or with ``cfg.folds`` a K-fold of them.

A run is usable per fold (``cfg.fold = k``), resumable (``cfg.resume = run_dir`` continues in
the same folder and ends with the same metrics), and leaves every file of docs/run-folder.md.

K-fold: a parent folder ``<output_dir>/<ts>_<name>_kfold/`` holds one ordinary run folder per
fold, ``<ts>_<name>_fold<k>/``, beside the parent's own files (out-of-fold ``val_probs.csv``,
fold-averaged ``test_probs.csv``, CV ``summary.json``). Every fold is exactly the run of
``cfg`` with ``fold = k``: same seed, same split as a lone ``--fold k`` run. Resuming a parent
keeps the complete folds, resumes an interrupted one and trains the missing ones.

Started by ``torchrun``, every process runs ``fit`` and they train one model together
(:mod:`kit.train.distributed`, docs/multi-gpu.md); rank 0 decides and writes the folders.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import albumentations as A
import numpy as np
import pandas as pd
import torch

from kit import runfolder as rundir
from kit.cli import INTERRUPTED, TERMINATED, Terminated, sigterm_as_interrupt
from kit.config import Config, parse_folds, smoke_note
from kit.device import pick_amp, resolve_device
from kit.heads import head_task
from kit.metrics import score_probs, selection_score
from kit.pretrained import Weights, resolve_weights
from kit.runfolder import (
    LAST,
    PSEUDO_SUMMARY_KEY,
    Run,
    find_fold_run,
    read_run,
    run_score,
    write_parent,
)
from kit.runfolder.resume import check_resumable, nothing_to_train
from kit.sheets import mistakes_sheet
from kit.tracking import Hook, Pruned
from kit.train import data, distributed, mirror
from kit.train.checkpoint import TrainState, check, last_epoch, load
from kit.train.loop import Epochs, Job, prepare, refit, train_run

__all__ = ["fit"]

_log = logging.getLogger("kit")


def fit(
    cfg: Config, train_transform: A.BasicTransform | None = None, *, hooks: Sequence[Hook] = ()
) -> Run:
    """Train ``cfg`` and write its run folder (a K-fold parent with ``cfg.folds``).

    ``train_transform`` replaces the preset's augmentations (it sees cropped, resized uint8
    pictures; kit adds crop/resize before and normalisation after). Ctrl-C saves the status,
    keeps ``last.pt`` of the last finished epoch, and exits with code 130 (SIGTERM: the same,
    with 143). The returned :class:`Run` of a K-fold holds the fold runs in ``folds``. Bad data
    or config is refused before any run folder is written. ``hooks`` open like
    ``cfg.track``'s trackers and see every epoch (docs/tracking.md); one raising
    :class:`kit.tracking.Pruned` stops the run, marked ``pruned``, and ``fit`` re-raises it.
    """
    with sigterm_as_interrupt():
        checked = check(cfg)
        ctx, device = distributed.init(resolve_device(checked.device))
        try:
            if ctx.is_main and not checked.resume:  # an unwritable output stops before the data
                rundir.check_output_dir(checked.output_dir)
            if checked.smoke and ctx.is_main and not checked.quiet:
                print(smoke_note(cfg, checked), flush=True)
            # before any folder: weights neither cached nor downloadable fail in seconds
            weights = resolve_weights(checked)
            if checked.folds is None:
                return _fit_run(checked, train_transform, ctx, device, weights, hooks)
            return _fit_folds(checked, train_transform, ctx, device, weights)
        finally:
            distributed.teardown(ctx)


def _open_folder(cfg: Config, name: str, device: torch.device, ctx: distributed.DistContext):
    """A new folder ``<output_dir>/<ts>_<name>`` (or ``cfg.resume``, reopened) with its
    config.json and env.json (with the autocast dtype; a resumed folder's env.json lists every
    resumption) and, in a new
    folder, what re-creates the run (recipe.py, git.diff: :func:`kit.runfolder.write_source`)."""
    folder = Path(cfg.resume) if cfg.resume else rundir.create_run_dir(cfg.output_dir, name)
    if not cfg.resume:
        rundir.write_source(folder)
    env = {**rundir.env_info(str(device)), "processes": ctx.world_size}
    env["amp_dtype"] = pick_amp(cfg, device).name  # what autocast computes in on this device
    first = rundir.read_env(folder) if cfg.resume else {}
    if first:
        env = {**first, "resumed": [*first.get("resumed", []), env]}
    rundir.write_config(folder, cfg.to_dict())
    rundir.write_env(folder, env)
    return folder


def _fit_run(
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
            "%s is complete (best epoch %d, val macro F1 %.4f): nothing to train; to train "
            "longer, start a new run with more --epochs",
            done.run_dir, done.best_epoch, done.best_score,
        )  # fmt: skip
        return done
    # bad data, a bad model or a damaged last.pt is refused before the folder is written
    unopened = Job(cfg, Path(cfg.resume or cfg.output_dir), device, ctx, weights, tuple(hooks))
    ready = prepare(unopened, train_transform)
    run_dir = distributed.broadcast(
        _open_folder(cfg, cfg.name, device, ctx) if ctx.is_main else None, ctx
    )
    job, state = dataclasses.replace(unopened, run_dir=run_dir), ready.state
    job.write_status("running", state.epoch)
    try:
        return _finish(job, state, train_run(job, ready))
    except Pruned as why:
        mirror.stop(job, state, "pruned")
        _log.info("pruned after epoch %d (%s)", state.epoch, why)
        raise
    except KeyboardInterrupt as err:
        mirror.stop(job, state, "interrupted")
        # what is on disk, not state.epoch: an epoch is counted before its last.pt is written
        saved = last_epoch(run_dir / LAST)
        job.write_status("interrupted", saved or 0)
        if saved:
            hint = f"last.pt holds epoch {saved} of {cfg.epochs}: continue with --resume {run_dir}"
        else:
            hint = "no epoch was saved, so there is nothing to resume: start the run again"
        how = "terminated (SIGTERM)" if isinstance(err, Terminated) else "interrupted"
        _log.warning("%s; %s", how, hint)
        raise SystemExit(TERMINATED if isinstance(err, Terminated) else INTERRUPTED) from None
    except Exception as err:
        try:
            mirror.stop(job, state, "failed", f"{type(err).__name__}: {err}")
        except OSError:  # a full disk must not hide the error that stopped the run
            _log.warning("could not record the failure in %s", run_dir / rundir.STATUS)
        raise


def _finish(job: Job, state: TrainState, done: Epochs) -> Run:
    """Reload ``best.pt``, write its probabilities, refit (``cfg.refit``), write the test
    probabilities and submission of the refit or best weights (when there is an eval set) and
    ``summary.json``, mark the run complete; rank 0 alone writes. A per-task run writes its
    task's probabilities and no submission (it predicts no class)."""
    cfg, run_dir, t0, main = job.cfg, job.run_dir, time.time(), job.ctx.is_main
    model, splits, rows, predict = done.model, done.splits, done.rows, done.predict
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
        predict, weights = refit(job, done, best), rundir.REFIT
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
    job.write_status("complete", state.epoch)
    if main and not cfg.keep_last:
        rundir.drop_last(run_dir)  # only --resume needs it, and a complete run trains no more
    mirror.complete(job, rows, summary)
    chosen = selection_score(scores, task)
    heads = ", ".join(
        f"{h} {summary[f'val_f1_{h}']:.3f}"
        for h in ("mask", "gender", "age")
        if summary.get(f"val_f1_{h}") is not None
    )
    _log.info(
        "done: best epoch %d, val %s %.4f (accuracy %.4f%s) -> %s%s",
        summary["best_epoch"], "macro F1" if task is None else f"{task} F1", chosen,
        summary["val_accuracy"], f"; {heads}" if heads else "", run_dir,
        f"\nsubmission: {run_dir / rundir.SUBMISSION}" if (run_dir / rundir.SUBMISSION).is_file()
        else "",
    )  # fmt: skip
    return Run(run_dir, "complete", cfg, summary, chosen, summary["best_epoch"])


def _mistakes(run_dir: Path, val: pd.DataFrame, probs: np.ndarray) -> None:
    """The mistakes sheet; a picture that cannot be drawn only warns (the run is complete)."""
    path = run_dir / rundir.VAL_MISTAKES
    try:
        title = f"{run_dir.name}: most confident mistakes"
        mistakes_sheet(val["path"].tolist(), val["label"].to_numpy(), probs, path, title=title)
    except (OSError, ValueError) as err:
        _log.warning("no mistakes sheet %s: %s", path, err)


def _fit_folds(
    cfg: Config,
    train_transform: A.BasicTransform | None,
    ctx: distributed.DistContext,
    device: torch.device,
    weights: Weights | None = None,
) -> Run:
    """Every fold of ``cfg.folds``, then the parent's files; rank 0 plans each fold (keep,
    resume, train) and alone writes the parent."""
    wanted, main = parse_folds(cfg.folds, cfg.n_folds), ctx.is_main
    distributed.setup_logging(cfg.quiet or not main)
    split = _split(cfg)  # reads and checks the data (and builds the fixture) before the parent
    parent = distributed.broadcast(
        _open_folder(cfg, f"{cfg.name}_kfold", device, ctx) if main else None, ctx
    )
    runs: dict[int, Run] = {}
    _mark(ctx, parent, "running", 0)
    try:
        for k in wanted:
            plan = distributed.broadcast(find_fold_run(parent, k) if main else None, ctx)
            runs[k] = _fit_fold(cfg, parent, k, plan, train_transform, ctx, device, weights)
            _mark(ctx, parent, "running", len(runs))
        summary = None
        if main:
            dirs = {k: r.run_dir for k, r in runs.items()}
            summaries = {k: r.summary for k, r in runs.items()}
            pseudo = {k: v for k, v in summaries[wanted[0]].items() if k == PSEUDO_SUMMARY_KEY}
            summary = write_parent(parent, cfg.name, cfg.n_folds, dirs, summaries, split, pseudo)
        summary = distributed.broadcast(summary, ctx)
    except (KeyboardInterrupt, SystemExit):
        _mark(ctx, parent, "interrupted", len(runs))
        _log.warning("K-fold interrupted; continue with --resume %s", parent)
        raise
    except Exception as err:
        _mark(ctx, parent, "failed", len(runs), f"{type(err).__name__}: {err}")
        raise
    _mark(ctx, parent, "complete", len(runs))
    task, chosen = summary.get("task"), run_score(summary)
    _log.info(
        "K-fold done: out-of-fold %s %.4f (accuracy %.4f) over folds %s of %d -> %s",
        "macro F1" if task is None else f"{task} F1", chosen, summary["val_accuracy"], wanted,
        cfg.n_folds, parent,
    )  # fmt: skip
    folds = [runs[k] for k in wanted]
    return Run(parent, "complete", cfg, summary, chosen, 0, folds)


def _fit_fold(
    cfg: Config,
    parent: Path,
    k: int,
    plan: tuple[str, Path | None],
    train_transform: A.BasicTransform | None,
    ctx: distributed.DistContext,
    device: torch.device,
    weights: Weights | None = None,
) -> Run:
    """Fold ``k`` as :func:`kit.runfolder.find_fold_run` planned it: kept, resumed, or new."""
    action, found = plan
    if action == "keep" and found is not None:
        _log.info("fold %d: complete in %s; kept", k, found)
        return read_run(found)
    fold_cfg = cfg.replace(
        folds=None, fold=k, resume=None, output_dir=str(parent), name=f"{cfg.name}_fold{k}"
    )
    if action == "resume" and found is not None:
        _log.info("fold %d: resuming %s", k, found)
        fold_cfg = fold_cfg.replace(resume=str(found))
        check_resumable(fold_cfg, found)
    else:
        _log.info("fold %d of %d: training", k, cfg.n_folds)
    return _fit_run(fold_cfg, train_transform, ctx, device, weights)


def _split(cfg: Config) -> pd.Series:
    """Fold of every training image under ``cfg``, indexed by ``image_id``."""
    splits = data.load_splits(cfg.replace(folds=None, fold=0))
    frame = pd.concat([splits.train, splits.val], ignore_index=True)
    return pd.Series(data.person_folds_of(frame, cfg), index=frame["image_id"])


def _mark(
    ctx: distributed.DistContext, parent: Path, status: str, done: int, error: str | None = None
) -> None:
    """The parent's status.json (``epoch`` counts the finished folds), from rank 0 only.

    A summary.json left by an earlier, smaller set of folds stays valid for its files, but the
    ledger reads its status first, so it is told when this resume stopped.
    """
    if not ctx.is_main:
        return
    rundir.write_status(parent, status, done, error)
    summary = rundir.read_summary(parent) if status in ("interrupted", "failed") else {}
    if summary and summary.get("status") != status:
        rundir.write_summary(parent, {**summary, "status": status})
