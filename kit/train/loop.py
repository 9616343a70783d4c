"""The training of one run folder, in one process: the epoch loop (:func:`epochs`, shared by
the run in :func:`train_run` and its :func:`refit`) and the batch loop (:func:`train_one_epoch`).
Each epoch is seeded on its own, so a resumed run ends like an uninterrupted one; after each,
the validation set is scored and ``best.pt`` / ``last.pt`` / ``metrics.csv`` are kept current.
Under torchrun every process trains its share of the batches; rank 0 alone writes.

Reading a device tensor waits for the device, so the batch loop reads its loss sum (and NaN
check, and running F1 from confusion counts) every :data:`SYNC_EVERY` steps, never each step:
the GPU stays a few steps ahead of the Python code.
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from kit import runfolder as rundir
from kit.batch import create_device_aug, to_model_input
from kit.config import Config
from kit.device import pick_amp, seed_everything
from kit.errors import TrainingDiverged
from kit.labels import NUM_CLASSES, TASKS
from kit.metrics import f1_from_confusion, score_probs, selection_score
from kit.mixing import Mixer
from kit.models import OUTPUT_KINDS, head_spec, head_task, target_classes, to_probs
from kit.optim import REFITS, Parts, epoch_steps, optimizer_steps
from kit.progress import Progress
from kit.registry import blaming
from kit.train import checkpoint, distributed
from kit.train.forward import predictor
from kit.train.setup import Job, Ready, Trainer, build_trainer, inputs_record
from kit.transforms import normalization

__all__ = [
    "SYNC_EVERY",
    "Running",
    "batch_labels",
    "epochs",
    "refit",
    "train_one_epoch",
    "train_run",
]

_log = logging.getLogger("kit")

#: Training steps between reads of the loss (each read waits for the device to finish).
SYNC_EVERY = 25


def epochs(
    t: Trainer,
    cfg: Config,
    first: int = 1,
    heartbeat: Callable[[int, dict[str, Any]], None] | None = None,
) -> Iterator[tuple[int, float, float]]:
    """Train epochs ``first`` .. ``cfg.epochs`` of ``t``, each seeded by
    :meth:`~kit.train.setup.Trainer.start_epoch`: after each, ``(epoch, mean training loss of
    this process, learning rate of its last optimizer step)``. What the caller does with an
    epoch (validation, checkpoints) runs before the next one starts; leaving the loop stops
    training. ``heartbeat(finished epochs, figures)`` hears of the epoch in training."""
    for epoch in range(first, cfg.epochs + 1):
        mixer = t.start_epoch(cfg, epoch)
        beat = None if heartbeat is None else partial(heartbeat, epoch - 1)
        loss, lr = train_one_epoch(t.parts, t.loader, t.criterion, cfg, epoch, mixer, beat)
        yield epoch, loss, lr


def train_run(job: Job, ready: Ready) -> None:
    """Train every remaining epoch of ``job`` from ``ready``, each followed by the validation
    score, the scheduler's step, ``best.pt`` when it improved, its metrics.csv row and
    ``last.pt``; ``ready.state`` and ``ready.rows`` are kept current (the caller reports where
    an interrupt stopped, and ends the run)."""
    cfg, device, ctx = job.cfg, job.device, job.ctx
    splits, t, state, rows = ready.splits, ready.trainer, ready.state, ready.rows
    if splits.pseudo is not None and ctx.is_main:
        rundir.write_pseudo_labels(job.run_dir, splits.pseudo.rows)
    if ctx.is_main:  # what the model started from (the face counts were logged when read)
        rundir.update_env(job.run_dir, inputs_record(cfg, job.weights, ready.pictures.faces))
    t.parts.module = distributed.training_module(t.parts.model, cfg, ctx, device)
    if ctx.is_main:  # after last.pt: a resumed run continues its tracker runs at this epoch
        job.trackers.open(cfg, job.run_dir, job.hooks, state.epoch + 1)
    predict = predictor(t.parts.evaluated, cfg, ready.pictures, ctx)
    people = " / ".join(str(s["person_id"].nunique()) for s in (splits.train, splits.val))
    _log.info(
        f"run {job.run_dir}: {cfg.model}/{cfg.head} on {device}; {len(t.loader.dataset)} train / "
        f"{len(splits.val)} val images ({people} people) from {splits.data_dir}"
    )

    def heartbeat(done: int, figures: dict[str, Any]) -> None:
        job.write_status("running", done, progress=figures)

    task = head_task(cfg.head)
    t0 = time.time()
    for epoch, train_loss, lr in epochs(t, cfg, state.epoch + 1, heartbeat):
        # the whole validation set, scored the same on every process
        train_loss = distributed.mean(train_loss, ctx)
        scores, val_loss = score_probs(splits.val["label"], predict(splits.val), task)
        chosen = selection_score(scores, task)  # a per-task run keeps its best task F1
        with blaming(f"scheduler {cfg.scheduler!r}", f"the end of epoch {epoch}"):
            t.parts.scheduler.step(epoch, chosen)
        improved = chosen > state.best_score
        if improved:
            state.best_score, state.best_epoch, state.bad_epochs = chosen, epoch, 0
            if ctx.is_main:
                best = job.run_dir / rundir.BEST
                checkpoint.save_best(best, t.parts.evaluated, cfg.to_dict(), epoch, chosen)
        else:
            state.bad_epochs += 1
        state.epoch = epoch
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss}
        row.update({f"val_{k}": scores[k] for k in ("macro_f1", "accuracy")})
        row.update({f"val_f1_{h}": scores[f"f1_{h}"] for h in TASKS})
        row.update(lr=lr, seconds=round(time.time() - t0, 3))
        rows.append(row)
        f1 = " ".join(f"{h} {_fmt(row[f'val_f1_{h}'])}" for h in TASKS)
        _log.info(
            f"epoch {epoch}/{cfg.epochs}  train_loss {train_loss:.4f}  val_loss {val_loss:.4f}  "
            f"val_f1 {_fmt(row['val_macro_f1'], 4)} ({f1})  acc {row['val_accuracy']:.4f}  "
            f"lr {lr:.2e}  {row['seconds']:.1f}s{'  *best' if improved else ''}"
        )
        if ctx.is_main:
            rundir.write_metrics(job.run_dir, rows)
            checkpoint.save_last(job.run_dir / rundir.LAST, t.parts, state, cfg.to_dict())
        job.write_status("running", state.epoch)
        job.trackers.log_epoch(row)  # after last.pt: a hook may stop the run here
        stop = bool(cfg.early_stopping) and state.bad_epochs >= cfg.early_stopping
        if distributed.broadcast(stop, ctx):  # every process stops at the same epoch
            _log.info("early stop: no val macro F1 gain in %d epochs", cfg.early_stopping)
            break
        t0 = time.time()


def _fmt(value: float | None, digits: int = 3) -> str:
    """A score for the log; ``-`` for one a per-task run does not have."""
    return "-" if value is None else f"{value:.{digits}f}"


def refit(job: Job, ready: Ready, best: dict[str, Any]) -> Callable[[pd.DataFrame], np.ndarray]:
    """Train ``job.cfg.refit`` on the training and validation people (``best``: the loaded
    ``best.pt``) through the run's own epoch loop, write ``refit.pt`` (rank 0), and return the
    predictions of its weights."""
    spec = REFITS.use(job.cfg.refit)
    assert spec.config is not None, "refit 'none' trains nothing"
    cfg = spec.config(job.cfg, int(best["epoch"]))
    everyone = pd.concat([ready.splits.training, ready.splits.val], ignore_index=True)
    seed_everything(cfg.seed)  # refit "all" starts from the run's initial weights
    t = build_trainer(
        cfg,
        everyone,
        ready.pictures,
        ready.transform,
        device=job.device,
        ctx=job.ctx,
        pretrained=job.weights,
        weights=best["model"] if spec.from_best else None,
    )
    t.parts.module = distributed.training_module(t.parts.model, cfg, job.ctx, job.device)
    _log.info("refit %s: %d epochs on %d images", job.cfg.refit, cfg.epochs, len(t.loader.dataset))
    try:
        for epoch, loss, lr in epochs(t, cfg):
            _log.info("refit epoch %d/%d  train_loss %.4f  lr %.2e", epoch, cfg.epochs, loss, lr)
    finally:
        t.close()
    if job.ctx.is_main:
        path = job.run_dir / rundir.REFIT
        checkpoint.save_best(path, t.parts.evaluated, job.cfg.to_dict(), cfg.epochs, math.nan)
    return predictor(t.parts.evaluated, cfg, ready.pictures, job.ctx)


# ---- the batch loop ----------------------------------------------------------------------------
def batch_labels(output: Any, targets: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(training targets, predictions) of one batch for the running F1, on the model's device:
    18-way, or a per-task head's values."""
    with torch.no_grad():
        pred = to_probs(output.detach() if torch.is_tensor(output) else output).argmax(1)
    return target_classes(targets), pred


class Running:
    """The epoch's loss sum and (on a terminal) confusion counts, kept on the device: reading
    them waits for the device, so that happens every :data:`SYNC_EVERY` steps, not each one.
    The losses since the last read are checked for NaN / inf then."""

    def __init__(self, device: torch.device, counts: bool, width: int = NUM_CLASSES) -> None:
        dtype = torch.float32 if device.type == "mps" else torch.float64  # mps has no float64
        self.loss_sum = torch.zeros((), dtype=dtype, device=device)
        self.width = width  # classes of the running F1: 18, or a per-task head's values
        self.cm = torch.zeros(width**2, dtype=torch.int64, device=device) if counts else None
        self.pending: list[torch.Tensor] = []
        self.first = 0  # batch index of pending[0]

    def add(self, loss: torch.Tensor, n: int, output: Any, targets: Any) -> None:
        loss = loss.detach()
        self.pending.append(loss)
        self.loss_sum += loss.to(self.loss_sum.dtype) * n
        if self.cm is not None:
            true, pred = batch_labels(output, targets)
            self.cm += torch.bincount(true * self.width + pred, minlength=self.width**2)

    def check(self, epoch: int, lr: float) -> None:
        """Raise on the first non-finite loss since the last check."""
        if not self.pending:
            return
        losses = torch.stack(self.pending).float()
        finite = torch.isfinite(losses).cpu()
        if not bool(finite.all()):
            j = int((~finite).nonzero()[0])
            raise TrainingDiverged(
                f"training loss is {losses[j].item()} at epoch {epoch}, batch {self.first + j}; "
                f"try a lower --lr (now {lr}) or --grad-clip 1.0"
            )
        self.first += len(self.pending)
        self.pending = []

    def f1(self) -> float:
        """Macro F1 of every training batch so far, from the confusion counts."""
        cm = self.cm.cpu().numpy().reshape(self.width, self.width)
        return float(f1_from_confusion(cm).mean())


def _to_device(targets: Any, device: torch.device) -> Any:
    if isinstance(targets, dict):
        return {k: v.to(device, non_blocking=True) for k, v in targets.items()}
    return targets.to(device, non_blocking=True)


def train_one_epoch(
    parts: Parts,
    loader: Any,
    criterion: nn.Module,
    cfg: Config,
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
    norm = normalization(cfg)  # device augmentation: training batches only
    as_input = partial(
        to_model_input,
        device=device,
        mean=norm.mean,
        std=norm.std,
        channels_last=cfg.channels_last,
        augment=create_device_aug(cfg),
    )
    steps = epoch_steps(loader, cfg.max_steps_per_epoch)
    updates = (epoch - 1) * optimizer_steps(loader, cfg.max_steps_per_epoch, cfg.grad_accum)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    seen, lr = 0, max(float(g["lr"]) for g in optimizer.param_groups)
    width = OUTPUT_KINDS.get(head_spec(cfg.head).kind).width  # a per-task head: its values
    beat = None if heartbeat is None else (lambda figures: heartbeat({"epoch": epoch, **figures}))
    with Progress(f"epoch {epoch}/{cfg.epochs}", steps, cfg.quiet, beat) as progress:
        running = Running(device, counts=progress.bar_shown, width=width)
        # islice, not a break: a break would load (and throw away) one batch too many
        for i, (images, targets) in enumerate(itertools.islice(loader, steps)):
            images = as_input(images)
            targets = hard = _to_device(targets, device)
            if mixer is not None:
                images, targets = mixer(images, targets)
            on = f"a training batch of shape {tuple(images.shape)} ({images.dtype}, {device})"
            with amp.autocast():
                with blaming(f"model {cfg.model!r} (head {cfg.head!r})", on):
                    output = model(images)
                with blaming(f"loss {cfg.loss!r}", on):
                    loss = criterion(output, targets)
            running.add(loss, len(images), output, hard)
            seen += len(images)
            postfix = {}
            if (i + 1) % SYNC_EVERY == 0:  # reading the device's figures waits for it
                running.check(epoch, cfg.lr)
                postfix["loss"] = f"{running.loss_sum.item() / seen:.4f}"
                if progress.bar_shown:
                    postfix["f1"] = f"{running.f1():.3f}"
            scaler.scale(loss / cfg.grad_accum).backward()
            if (i + 1) % cfg.grad_accum == 0 or i + 1 == steps:
                if cfg.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                lr = max(float(g["lr"]) for g in optimizer.param_groups)
                with blaming(f"optimizer {cfg.optimizer!r}", f"update {updates + 1}"):
                    scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                updates += 1
                with blaming(f"scheduler {cfg.scheduler!r}", f"update {updates}"):
                    parts.scheduler.step_update(num_updates=updates)
                parts.update_ema(updates)
            progress.step(len(images), **postfix)
    running.check(epoch, cfg.lr)
    return running.loss_sum.item() / max(seen, 1), lr
