"""The epoch loop and the batch loop of one run folder, in one process, and the forward pass
over a frame that validation (and ``kit.inference``) use.

:func:`train_run` trains the :class:`~kit.train.checkpoint.Trainer` that
:func:`~kit.train.checkpoint.prepare` built (restored from ``last.pt`` when resuming) epoch
after epoch, each seeded on its own so a resumed run ends like an uninterrupted one, and keeps
``best.pt`` / ``last.pt`` / ``metrics.csv`` current. Under torchrun every process runs it on
its share of the batches; rank 0 alone writes.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import albumentations as A
import numpy as np
import pandas as pd
import torch
from torch import nn

from kit import runfolder as rundir
from kit.config import Config
from kit.data.fixture import resolve_data_dir
from kit.device import pick_amp
from kit.device_aug import create_device_aug
from kit.heads import OUTPUT_KINDS, head_spec, head_task, to_probs
from kit.metrics import score_probs, selection_score
from kit.mixing import Mixer
from kit.model_input import to_model_input
from kit.optim import Parts, epoch_steps, optimizer_steps
from kit.progress import Progress
from kit.registry import blame_user
from kit.running import SYNC_EVERY, Running, batch_labels
from kit.splits import Splits
from kit.train import checkpoint, data, distributed
from kit.train.checkpoint import Job, Ready, Trainer, TrainState
from kit.tta import crop_sources, tta_views

__all__ = ["Epochs", "batch_labels", "predict_frame", "predictor", "train_one_epoch", "train_run"]

_log = logging.getLogger("kit")


@dataclass
class Epochs:
    """What :func:`train_run` leaves for the end of the run."""

    model: nn.Module  # the evaluated module (the weight average with cfg.ema), last weights
    splits: Splits
    rows: list[dict[str, Any]]  # metrics.csv
    predict: Callable[[pd.DataFrame], np.ndarray]  # probabilities, computed by every process
    pictures: data.RunPictures
    transform: A.BasicTransform | None  # the recipe's training augmentations, if any


def predictor(model: nn.Module, cfg: Config, pictures: Any, ctx: Any) -> Callable[..., Any]:
    """Probabilities of ``model`` for a frame, in shares over the processes (on every one)."""

    def predict(df: pd.DataFrame) -> np.ndarray:  # in shares over the processes
        share = partial(predict_frame, model, cfg=cfg, tta=cfg.tta, prepared=pictures.eval)
        return distributed.predict_sharded(share, df, ctx)

    return predict


def train_run(job: Job, ready: Ready) -> Epochs:
    """Train every remaining epoch of ``job`` from ``ready``; ``ready.state`` is kept current
    (the caller reports where an interrupt stopped)."""
    cfg, device, ctx = job.cfg, job.device, job.ctx
    splits, pictures, t, state, rows = (
        ready.splits,
        ready.pictures,
        ready.trainer,
        ready.state,
        ready.rows,
    )
    if splits.pseudo is not None and ctx.is_main:
        rundir.write_pseudo_labels(job.run_dir, splits.pseudo.rows)
    if ctx.is_main:  # what the model started from (the face counts were logged when read)
        rundir.update_env(job.run_dir, data.inputs_record(cfg, job.weights, pictures.faces))
    t.parts.module = distributed.training_module(t.parts.model, cfg, ctx, device)
    if ctx.is_main:  # after last.pt: a resumed run continues its tracker runs at this epoch
        job.trackers.open(cfg, job.run_dir, job.hooks, state.epoch + 1)
    predict = predictor(t.parts.evaluated, cfg, pictures, ctx)
    _log.info(
        "run %s: %s/%s on %s; %d train / %d val images (%d / %d people) from %s",
        job.run_dir,
        cfg.model,
        cfg.head,
        device,
        len(t.loader.dataset),
        len(splits.val),
        splits.train["person_id"].nunique(),
        splits.val["person_id"].nunique(),
        splits.data_dir,
    )
    for epoch in range(state.epoch + 1, cfg.epochs + 1):
        mixer = t.start_epoch(cfg, epoch)
        rows.append(_epoch(job, t, mixer, state, predict, splits.val, epoch))
        if ctx.is_main:
            rundir.write_metrics(job.run_dir, rows)
            checkpoint.save_last(job.run_dir / rundir.LAST, t.parts, state, cfg.to_dict())
        job.write_status("running", state.epoch)
        job.trackers.log_epoch(rows[-1])  # after last.pt: a hook may stop the run here
        stop = bool(cfg.early_stopping) and state.bad_epochs >= cfg.early_stopping
        if distributed.broadcast(stop, ctx):  # every process stops at the same epoch
            _log.info("early stop: no val macro F1 gain in %d epochs", cfg.early_stopping)
            break
    return Epochs(t.parts.evaluated, splits, rows, predict, pictures, ready.transform)


def _epoch(
    job: Job,
    t: Trainer,
    mixer: Mixer | None,
    state: TrainState,
    predict: Callable[[pd.DataFrame], np.ndarray],
    val: pd.DataFrame,
    epoch: int,
) -> dict[str, Any]:
    """Train one epoch, score the whole validation set (the same on every process), tell the
    scheduler, keep ``best.pt``: the epoch's row of metrics.csv."""
    cfg, t0, parts = job.cfg, time.time(), t.parts
    heartbeat = partial(job.heartbeat, epoch - 1)
    train_loss, lr = train_one_epoch(parts, t.loader, t.criterion, cfg, epoch, mixer, heartbeat)
    train_loss = distributed.mean(train_loss, job.ctx)
    task = head_task(cfg.head)
    scores, val_loss = score_probs(val["label"], predict(val), task)
    chosen = selection_score(scores, task)  # a per-task run keeps its best task F1
    parts.scheduler.step(epoch, chosen)
    improved = chosen > state.best_score
    if improved:
        state.best_score, state.best_epoch, state.bad_epochs = chosen, epoch, 0
        if job.ctx.is_main:
            best = job.run_dir / rundir.BEST
            checkpoint.save_best(best, parts.evaluated, cfg.to_dict(), epoch, state.best_score)
    else:
        state.bad_epochs += 1
    state.epoch = epoch
    row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss}
    row.update({f"val_{k}": scores[k] for k in ("macro_f1", "accuracy")})
    row.update({f"val_f1_{h}": scores[f"f1_{h}"] for h in ("mask", "gender", "age")})
    row.update(lr=lr, seconds=round(time.time() - t0, 3))
    _log.info(
        "epoch %d/%d  train_loss %.4f  val_loss %.4f  val_f1 %s (mask %s gender %s "
        "age %s)  acc %.4f  lr %.2e  %.1fs%s",
        epoch,
        cfg.epochs,
        train_loss,
        val_loss,
        _fmt(row["val_macro_f1"], 4),
        _fmt(row["val_f1_mask"]),
        _fmt(row["val_f1_gender"]),
        _fmt(row["val_f1_age"]),
        row["val_accuracy"],
        lr,
        row["seconds"],
        "  *best" if improved else "",
    )
    return row


def _fmt(value: float | None, digits: int = 3) -> str:
    """A score for the log; ``-`` for one a per-task run does not have."""
    return "-" if value is None else f"{value:.{digits}f}"


# ---- the batch loop ----------------------------------------------------------------------------
def _batch(images: torch.Tensor) -> str:
    """A training batch as a failure names it."""
    return f"a training batch of shape {tuple(images.shape)} ({images.dtype}, {images.device})"


def _to_device(targets: Any, device: torch.device) -> Any:
    if isinstance(targets, dict):
        return {k: v.to(device, non_blocking=True) for k, v in targets.items()}
    return targets.to(device, non_blocking=True)


def train_one_epoch(
    parts: Parts,
    loader: Any,
    criterion: nn.Module,
    cfg: Any,
    epoch: int,
    mixer: Mixer | None = None,
    heartbeat: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[float, float]:
    """Train ``parts.trained`` for one epoch: (mean loss per image, learning rate of its last
    optimizer step). The scheduler and the weight average advance once per optimizer step
    (``cfg.grad_accum`` batches), counting updates from the run's start. ``mixer`` mixes
    every batch (its targets become soft). Progress is shown as :mod:`kit.progress` says, and
    ``heartbeat`` gets its figures."""
    model, optimizer, scaler = parts.trained, parts.optimizer, parts.scaler
    device = next(model.parameters()).device
    amp = pick_amp(cfg, device)  # the scaler of build_parts is on for float16 alone
    augment = create_device_aug(cfg)  # training batches only, on the device
    steps, updates = epoch_steps(loader, cfg), (epoch - 1) * optimizer_steps(loader, cfg)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    seen, lr = 0, max(float(g["lr"]) for g in optimizer.param_groups)
    width = OUTPUT_KINDS.get(head_spec(cfg.head).kind).width  # a per-task head: its values
    beat = None if heartbeat is None else (lambda figures: heartbeat({"epoch": epoch, **figures}))
    with Progress(f"epoch {epoch}/{cfg.epochs}", steps, cfg.quiet, beat) as progress:
        running = Running(device, counts=progress.bar_shown, width=width)
        # islice, not a break: a break would load (and throw away) one batch too many
        for i, (images, targets) in enumerate(itertools.islice(loader, steps)):
            images = to_model_input(images, cfg, device, augment)
            targets = hard = _to_device(targets, device)
            if mixer is not None:
                images, targets = mixer(images, targets)
            with amp.autocast():
                try:
                    output = model(images)
                except Exception as err:
                    blame_user(err, f"model {cfg.model!r} (head {cfg.head!r})", _batch(images))
                    raise
                try:
                    loss = criterion(output, targets)
                except Exception as err:
                    blame_user(err, f"loss {cfg.loss!r}", _batch(images))
                    raise
            running.add(loss, len(images), output, hard)
            seen += len(images)
            postfix = {}
            if (i + 1) % SYNC_EVERY == 0:  # reading the device's figures waits for it
                running.check(epoch, cfg)
                postfix["loss"] = f"{running.loss_sum.item() / seen:.4f}"
                if progress.bar_shown:
                    postfix["f1"] = f"{running.f1():.3f}"
            scaler.scale(loss / cfg.grad_accum).backward()
            if (i + 1) % cfg.grad_accum == 0 or i + 1 == steps:
                if cfg.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                lr = max(float(g["lr"]) for g in optimizer.param_groups)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                updates += 1
                parts.scheduler.step_update(num_updates=updates)
                parts.update_ema(updates)
            progress.step(len(images), **postfix)
    running.check(epoch, cfg)
    return running.loss_sum.item() / max(seen, 1), lr


@torch.inference_mode()
def predict_frame(
    model: nn.Module,
    df: pd.DataFrame,
    cfg: Any,
    batch_size: int | None = None,
    tta: str = "none",
    prepared: Any = None,
) -> np.ndarray:
    """(n, 18) probabilities of ``model`` (trained under ``cfg``, on its device) for the rows of
    ``df`` (column ``path``), in row order, through ``cfg``'s evaluation transform; a per-task
    head (``kit.heads.head_task``) gives its task's (n, k) probabilities instead.

    ``tta`` names the test-time views whose probabilities are averaged
    (``kit.tta.tta_views``: ``"hflip"``, ``"hflip+shift"``, ...); a crop view
    (``"center_face"``) also reads the rows under the other crop modes it names
    (``kit.tta.crop_sources``). ``prepared`` reads pictures already cropped and resized for
    ``cfg`` by path (an ``ImageCache``).
    """
    views_of = tta_views(tta)
    device = next(model.parameters()).device
    kind = head_spec(cfg.head).kind
    loader = data.frame_loader(df, cfg, prepared, batch_size, pin_memory=device.type == "cuda")
    crops = []  # the data folder (perhaps the fixture, built on first use) only for crop views
    if views_of.crops:
        paths = df["path"].astype(str).tolist()
        crops = crop_sources(views_of, cfg, resolve_data_dir(cfg), paths)
    crop_loaders = [data.frame_loader(df, c.cfg, c.loader, batch_size) for c in crops]
    amp, was_training = pick_amp(cfg, device), model.training
    model.eval()
    chunks, start = [], 0
    try:
        for (images, _), *others in zip(loader, *crop_loaders, strict=True):
            images = to_model_input(images, cfg, device)
            batches = [
                c.view(to_model_input(o, c.cfg, device), images, start)
                for c, (o, _) in zip(crops, others, strict=True)
            ]
            start += len(images)
            with amp.autocast():
                views = [to_probs(model(v), kind) for v in views_of(images, batches)]
            chunks.append((sum(views) / len(views)).float().cpu())
    finally:
        model.train(was_training)
    if not chunks:
        return np.zeros((0, OUTPUT_KINDS.get(kind).width))
    return torch.cat(chunks).numpy().astype(np.float64)
