"""The epoch loop and the batch loop of one run folder, in one process, and the forward pass
over a frame that validation (and ``kit.inference``) use.

:func:`train_run` builds the :class:`~kit.train.checkpoint.Parts`, restores ``last.pt`` when
resuming, trains epoch after epoch (each seeded on its own, so a resumed run ends like an
uninterrupted one) and keeps ``best.pt`` / ``last.pt`` / ``metrics.csv`` current. Under torchrun
every process runs it on its share of the batches; rank 0 alone writes.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import pandas as pd
import torch
from torch import nn

from kit import runfolder as rundir
from kit.config import Config
from kit.data import sampling
from kit.heads import OUTPUT_KINDS, head_spec, head_target, head_task, to_probs
from kit.metrics import selection_score, summarize, summarize_task, task_values
from kit.models import Weights, create_model
from kit.progress import Progress
from kit.tracking import Hook, Trackers
from kit.train import checkpoint, data, distributed
from kit.train.checkpoint import Parts, TrainState
from kit.train.optim import build_criterion
from kit.train.running import SYNC_EVERY, Running, batch_labels
from kit.transforms import TTA

__all__ = [
    "Epochs",
    "Job",
    "batch_labels",
    "predict_frame",
    "score",
    "train_one_epoch",
    "train_run",
]

_log = logging.getLogger("kit")


@dataclass(frozen=True)
class Job:
    """One process's share of one run folder."""

    cfg: Config
    run_dir: Path
    device: torch.device
    ctx: distributed.DistContext = distributed.SINGLE
    weights: Weights | None = None  # resolved before the run folder was made (kit.pretrained)
    hooks: Sequence[Hook] = ()  # fit's epoch hooks, opened with the --track trackers
    trackers: Trackers = field(default_factory=Trackers)  # opened by train_run (rank 0)

    def write_status(self, status: str, epoch: int, error: str | None = None) -> None:
        """The run's status.json (rank 0 only)."""
        if self.ctx.is_main:
            rundir.write_status(self.run_dir, status, epoch, error)

    def heartbeat(self, epoch: int, progress: dict[str, Any]) -> None:
        """status.json says "running" at ``epoch`` with where the current epoch stands."""
        if self.ctx.is_main:
            rundir.write_status(self.run_dir, "running", epoch, progress=progress)


@dataclass
class Epochs:
    """What :func:`train_run` leaves for the end of the run."""

    model: nn.Module  # the plain model (its last epoch's weights)
    splits: data.Splits
    rows: list[dict[str, Any]]  # metrics.csv
    predict: Callable[[pd.DataFrame], np.ndarray]  # probabilities, computed by every process


def train_run(job: Job, state: TrainState, train_transform: A.BasicTransform | None) -> Epochs:
    """Train every remaining epoch of ``job``; ``state`` is kept current (the caller reports
    where an interrupt stopped)."""
    cfg, device, ctx = job.cfg, job.device, job.ctx
    checkpoint.set_determinism(cfg.deterministic)
    checkpoint.seed_everything(cfg.seed)
    splits = data.load_splits(cfg)
    pictures = data.RunPictures.for_run(cfg, splits, ctx, progress=not cfg.quiet)
    target = head_target(cfg.head)
    train_ds = data.train_dataset(cfg, splits.training, target, pictures, train_transform)
    if splits.pseudo is not None and ctx.is_main:
        rundir.write_pseudo_labels(job.run_dir, splits.pseudo.rows)
    train_tf, generator = train_ds.transform, torch.Generator()
    loader = sampling.train_loader(train_ds, cfg, generator, ctx.rank, ctx.world_size)
    model = distributed.prepare_model(create_model(cfg, weights=job.weights).to(device), cfg)
    if ctx.is_main:  # what the model started from (the face counts were logged when read)
        rundir.update_env(job.run_dir, data.inputs_record(cfg, job.weights, pictures.faces))
    criterion = build_criterion(cfg, train_ds.targets).to(device)
    parts = checkpoint.build_parts(cfg, model, optimizer_steps(loader, cfg), device)
    rows: list[dict[str, Any]] = []
    if cfg.resume:
        checkpoint.restore(checkpoint.load(job.run_dir / rundir.LAST, device), parts, state)
        rows = [r for r in rundir.read_metrics(job.run_dir) if r["epoch"] <= state.epoch]
    parts.module = distributed.training_module(model, cfg, ctx, device)
    if ctx.is_main:  # after last.pt: a resumed run continues its tracker runs at this epoch
        job.trackers.open(cfg, job.run_dir, job.hooks, state.epoch + 1)

    def predict(df: pd.DataFrame) -> np.ndarray:  # in shares over the processes
        share = partial(predict_frame, model, cfg=cfg, tta=cfg.tta, prepared=pictures.eval)
        return distributed.predict_sharded(share, df, ctx)

    _log.info(
        "run %s: %s/%s on %s; %d train / %d val images (%d / %d people) from %s",
        job.run_dir, cfg.model, cfg.head, device, len(splits.train), len(splits.val),
        splits.train["person_id"].nunique(), splits.val["person_id"].nunique(), splits.data_dir,
    )  # fmt: skip
    for epoch in range(state.epoch + 1, cfg.epochs + 1):
        seed = sampling.epoch_seed(cfg.seed, epoch)
        checkpoint.seed_everything(seed)
        generator.manual_seed(seed)
        train_tf.set_random_seed(seed)
        rows.append(_epoch(job, parts, state, loader, criterion, predict, splits.val, epoch))
        if ctx.is_main:
            rundir.write_metrics(job.run_dir, rows)
            checkpoint.save_last(job.run_dir / rundir.LAST, parts, state, cfg.to_dict())
        job.write_status("running", state.epoch)
        job.trackers.log_epoch(rows[-1])  # after last.pt: a hook may stop the run here
        stop = bool(cfg.early_stopping) and state.bad_epochs >= cfg.early_stopping
        if distributed.broadcast(stop, ctx):  # every process stops at the same epoch
            _log.info("early stop: no val macro F1 gain in %d epochs", cfg.early_stopping)
            break
    return Epochs(model, splits, rows, predict)


def _epoch(
    job: Job, parts: Parts, state: TrainState, loader: Any, criterion: nn.Module,
    predict: Callable[[pd.DataFrame], np.ndarray], val: pd.DataFrame, epoch: int,
) -> dict[str, Any]:  # fmt: skip
    """Train one epoch, score the whole validation set (the same on every process), tell the
    scheduler, keep ``best.pt``: the epoch's row of metrics.csv."""
    cfg, t0 = job.cfg, time.time()
    heartbeat = partial(job.heartbeat, epoch - 1)
    train_loss, lr = train_one_epoch(parts, loader, criterion, cfg, epoch, heartbeat)
    train_loss = distributed.mean(train_loss, job.ctx)
    task = head_task(cfg.head)
    scores, val_loss = score(val, predict(val), task)
    chosen = selection_score(scores, task)  # a per-task run keeps its best task F1
    parts.scheduler.step(epoch, chosen)
    improved = chosen > state.best_score
    if improved:
        state.best_score, state.best_epoch, state.bad_epochs = chosen, epoch, 0
        if job.ctx.is_main:
            best = job.run_dir / rundir.BEST
            checkpoint.save_best(best, parts.model, cfg.to_dict(), epoch, state.best_score)
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
        epoch, cfg.epochs, train_loss, val_loss, _fmt(row["val_macro_f1"], 4),
        _fmt(row["val_f1_mask"]), _fmt(row["val_f1_gender"]), _fmt(row["val_f1_age"]),
        row["val_accuracy"], lr, row["seconds"], "  *best" if improved else "",
    )  # fmt: skip
    return row


def _fmt(value: float | None, digits: int = 3) -> str:
    """A score for the log; ``-`` for one a per-task run does not have."""
    return "-" if value is None else f"{value:.{digits}f}"


# ---- the batch loop ----------------------------------------------------------------------------
def _to_device(targets: Any, device: torch.device) -> Any:
    if isinstance(targets, dict):
        return {k: v.to(device, non_blocking=True) for k, v in targets.items()}
    return targets.to(device, non_blocking=True)


def epoch_steps(loader: Any, cfg: Any) -> int:
    """Batches per training epoch (``max_steps_per_epoch`` caps it)."""
    return min(len(loader), cfg.max_steps_per_epoch or len(loader))


def optimizer_steps(loader: Any, cfg: Any) -> int:
    """Optimizer steps per epoch, after gradient accumulation."""
    return math.ceil(epoch_steps(loader, cfg) / cfg.grad_accum)


def train_one_epoch(
    parts: Parts, loader: Any, criterion: nn.Module, cfg: Any, epoch: int,
    heartbeat: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[float, float]:  # fmt: skip
    """Train ``parts.trained`` for one epoch: (mean loss per image, learning rate of its last
    optimizer step). The scheduler advances once per optimizer step (``cfg.grad_accum``
    batches), counting updates from the run's start. Progress is shown as
    :mod:`kit.progress` says, and ``heartbeat`` gets its figures."""
    model, optimizer, scaler = parts.trained, parts.optimizer, parts.scaler
    device = next(model.parameters()).device
    steps, updates = epoch_steps(loader, cfg), (epoch - 1) * optimizer_steps(loader, cfg)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    seen, lr = 0, float(optimizer.param_groups[0]["lr"])
    width = OUTPUT_KINDS.get(head_spec(cfg.head).kind).width  # a per-task head: its values
    beat = None if heartbeat is None else (lambda figures: heartbeat({"epoch": epoch, **figures}))
    with Progress(f"epoch {epoch}/{cfg.epochs}", steps, cfg.quiet, beat) as progress:
        running = Running(device, counts=progress.bar_shown, width=width)
        # islice, not a break: a break would load (and throw away) one batch too many
        for i, (images, targets) in enumerate(itertools.islice(loader, steps)):
            images, targets = images.to(device, non_blocking=True), _to_device(targets, device)
            with torch.autocast(device.type, enabled=scaler.is_enabled()):
                output = model(images)
                loss = criterion(output, targets)
            running.add(loss, len(images), output, targets)
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
                lr = float(optimizer.param_groups[0]["lr"])
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                updates += 1
                parts.scheduler.step_update(num_updates=updates)
            progress.step(len(images), **postfix)
    running.check(epoch, cfg)
    return running.loss_sum.item() / max(seen, 1), lr


def score(
    df: pd.DataFrame, probs: np.ndarray, task: str | None = None
) -> tuple[dict[str, Any], float]:
    """(scores, loss) of ``probs`` on ``df``, scored with the official labels (``label``).

    The loss is the mean negative log-likelihood of the official class under the 18-way
    probabilities: comparable across heads, losses and age thresholds. A per-task run's
    ``probs`` are its ``task``'s: scores and loss are the task's (``summarize_task``).
    """
    truth = df["label"].to_numpy(np.int64)
    if task is not None:
        values = task_values(task, truth)
        picked = probs[np.arange(len(values)), values]
        scores = summarize_task(task, truth, probs.argmax(1))
    else:
        picked = probs[np.arange(len(truth)), truth]
        scores = summarize(truth, probs.argmax(1))
    return scores, float(-np.log(np.clip(picked, 1e-12, None)).mean())


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

    ``tta="hflip"`` averages each picture's and its mirror image's probabilities. ``prepared``
    reads pictures already cropped and resized for ``cfg`` by path (an ``ImageCache``).
    """
    views_of = TTA.get(tta)
    device = next(model.parameters()).device
    kind = head_spec(cfg.head).kind
    loader = data.frame_loader(df, cfg, prepared, batch_size, pin_memory=device.type == "cuda")
    use_amp, was_training = bool(cfg.amp) and device.type == "cuda", model.training
    model.eval()
    chunks = []
    try:
        for images, _ in loader:
            images = images.to(device, non_blocking=True)
            if cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, enabled=use_amp):
                views = [to_probs(model(v), kind) for v in views_of(images)]
            chunks.append((sum(views) / len(views)).float().cpu())
    finally:
        model.train(was_training)
    if not chunks:
        return np.zeros((0, OUTPUT_KINDS.get(kind).width))
    return torch.cat(chunks).numpy().astype(np.float64)
