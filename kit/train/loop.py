"""The epoch loop and the batch loop of one run folder, in one process, and the forward pass
over a frame that validation (and ``kit.inference``) use.

:func:`train_run` builds the :class:`~kit.train.checkpoint.Parts`, restores ``last.pt`` when
resuming, trains epoch after epoch (each seeded on its own, so a resumed run ends like an
uninterrupted one) and keeps ``best.pt`` / ``last.pt`` / ``metrics.csv`` current. Under torchrun
every process runs it on its share of the batches; rank 0 alone writes.
"""

from __future__ import annotations

import dataclasses
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
from kit.mixing import Mixer, build_mixer, mix_active
from kit.models import Weights, create_model
from kit.progress import Progress
from kit.registry import Registry
from kit.running import SYNC_EVERY, Running, batch_labels
from kit.splits import drop_ages
from kit.tracking import Hook, Trackers
from kit.train import checkpoint, data, distributed
from kit.train.checkpoint import Parts, TrainState
from kit.train.optim import build_criterion
from kit.tta import crop_sources, tta_views

__all__ = ["REFITS", "Epochs", "Job", "RefitSpec", "Trainer", "batch_labels", "build_trainer"]
__all__ += ["Ready", "predict_frame", "prepare", "refit", "score", "train_one_epoch", "train_run"]

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

    model: nn.Module  # the evaluated module (the weight average with cfg.ema), last weights
    splits: data.Splits
    rows: list[dict[str, Any]]  # metrics.csv
    predict: Callable[[pd.DataFrame], np.ndarray]  # probabilities, computed by every process
    pictures: data.RunPictures
    transform: A.BasicTransform | None  # the recipe's training augmentations, if any


@dataclass
class Trainer:
    """What trains on a set of rows: their loader (and its generator), the loss, the parts
    and the batch mixer (None: unmixed)."""

    loader: Any
    generator: torch.Generator
    train_tf: Any
    criterion: nn.Module
    parts: Parts
    mixer: Mixer | None

    def start_epoch(self, cfg: Config, epoch: int) -> Mixer | None:
        """Seed every random draw of ``epoch`` from ``(cfg.seed, epoch)`` alone (a resumed run
        repeats it exactly); the mixer to use in it."""
        seed = sampling.epoch_seed(cfg.seed, epoch)
        checkpoint.seed_everything(seed)  # numpy's generator also draws the mixing
        self.generator.manual_seed(seed)
        self.train_tf.set_random_seed(seed)
        return self.mixer if mix_active(cfg, epoch) else None


def build_trainer(
    job: Job, rows: pd.DataFrame, pictures: data.RunPictures, augment: A.BasicTransform | None,
    weights: dict[str, Any] | None = None,
) -> Trainer:  # fmt: skip
    """The :class:`Trainer` of ``job.cfg`` on ``rows`` (people of ``cfg.drop_ages`` left out),
    its model starting from ``weights`` when given."""
    cfg, device, ctx = job.cfg, job.device, job.ctx
    train_ds = data.train_dataset(cfg, drop_ages(rows, cfg.drop_ages), head_target(cfg.head),
                                  pictures, augment)  # fmt: skip
    generator = torch.Generator()
    loader = sampling.train_loader(train_ds, cfg, generator, ctx.rank, ctx.world_size)
    model = distributed.prepare_model(create_model(cfg, weights=job.weights).to(device), cfg)
    if weights is not None:
        model.load_state_dict(weights)
    criterion = build_criterion(cfg, train_ds.targets).to(device)
    parts = checkpoint.build_parts(cfg, model, optimizer_steps(loader, cfg), device)
    return Trainer(loader, generator, train_ds.transform, criterion, parts, build_mixer(cfg))


def _predictor(model: nn.Module, cfg: Config, pictures: Any, ctx: Any) -> Callable[..., Any]:
    def predict(df: pd.DataFrame) -> np.ndarray:  # in shares over the processes
        share = partial(predict_frame, model, cfg=cfg, tta=cfg.tta, prepared=pictures.eval)
        return distributed.predict_sharded(share, df, ctx)

    return predict


@dataclass
class Ready:
    """What a run needs before its first epoch, built by :func:`prepare` before its folder is
    written, so that bad data, a model that does not fit its weights or a damaged ``last.pt``
    leave no run folder behind (and a resumed folder untouched)."""

    splits: data.Splits
    pictures: data.RunPictures
    trainer: Trainer
    state: TrainState  # restored from last.pt when resuming
    rows: list[dict[str, Any]]  # metrics.csv rows of the epochs already done
    transform: A.BasicTransform | None  # the recipe's training augmentations, if any


def prepare(job: Job, train_transform: A.BasicTransform | None) -> Ready:
    """The data (read and checked), the picture cache and the :class:`Trainer` of ``job.cfg``,
    restored from ``cfg.resume``'s ``last.pt`` when resuming. Nothing is written to
    ``job.run_dir`` (it need not exist yet)."""
    cfg, device, ctx = job.cfg, job.device, job.ctx
    checkpoint.set_determinism(cfg.deterministic)
    checkpoint.seed_everything(cfg.seed)
    splits = data.load_splits(cfg)
    pictures = data.RunPictures.for_run(cfg, splits, ctx, progress=not cfg.quiet)
    t = build_trainer(job, splits.training, pictures, train_transform)
    state, rows = TrainState(), []
    if cfg.resume:
        resumed = Path(cfg.resume)
        checkpoint.restore(checkpoint.load(resumed / rundir.LAST, device), t.parts, state)
        rows = [r for r in rundir.read_metrics(resumed) if r["epoch"] <= state.epoch]
    return Ready(splits, pictures, t, state, rows, train_transform)


def train_run(job: Job, ready: Ready) -> Epochs:
    """Train every remaining epoch of ``job`` from ``ready``; ``ready.state`` is kept current
    (the caller reports where an interrupt stopped)."""
    cfg, device, ctx = job.cfg, job.device, job.ctx
    splits, pictures, t, state, rows = (
        ready.splits, ready.pictures, ready.trainer, ready.state, ready.rows
    )  # fmt: skip
    if splits.pseudo is not None and ctx.is_main:
        rundir.write_pseudo_labels(job.run_dir, splits.pseudo.rows)
    if ctx.is_main:  # what the model started from (the face counts were logged when read)
        rundir.update_env(job.run_dir, data.inputs_record(cfg, job.weights, pictures.faces))
    t.parts.module = distributed.training_module(t.parts.model, cfg, ctx, device)
    if ctx.is_main:  # after last.pt: a resumed run continues its tracker runs at this epoch
        job.trackers.open(cfg, job.run_dir, job.hooks, state.epoch + 1)
    predict = _predictor(t.parts.evaluated, cfg, pictures, ctx)
    _log.info(
        "run %s: %s/%s on %s; %d train / %d val images (%d / %d people) from %s",
        job.run_dir, cfg.model, cfg.head, device, len(t.loader.dataset), len(splits.val),
        splits.train["person_id"].nunique(), splits.val["person_id"].nunique(), splits.data_dir,
    )  # fmt: skip
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
    job: Job, t: Trainer, mixer: Mixer | None, state: TrainState,
    predict: Callable[[pd.DataFrame], np.ndarray], val: pd.DataFrame, epoch: int,
) -> dict[str, Any]:  # fmt: skip
    """Train one epoch, score the whole validation set (the same on every process), tell the
    scheduler, keep ``best.pt``: the epoch's row of metrics.csv."""
    cfg, t0, parts = job.cfg, time.time(), t.parts
    heartbeat = partial(job.heartbeat, epoch - 1)
    train_loss, lr = train_one_epoch(parts, t.loader, t.criterion, cfg, epoch, mixer, heartbeat)
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
        epoch, cfg.epochs, train_loss, val_loss, _fmt(row["val_macro_f1"], 4),
        _fmt(row["val_f1_mask"]), _fmt(row["val_f1_gender"]), _fmt(row["val_f1_age"]),
        row["val_accuracy"], lr, row["seconds"], "  *best" if improved else "",
    )  # fmt: skip
    return row


def _fmt(value: float | None, digits: int = 3) -> str:
    """A score for the log; ``-`` for one a per-task run does not have."""
    return "-" if value is None else f"{value:.{digits}f}"


# ---- refit: more training on every person, after validation ------------------------------------
@dataclass(frozen=True)
class RefitSpec:
    """A refit: ``config(cfg, best_epoch)`` is the config it trains with (None: no refit);
    ``from_best`` starts it from ``best.pt``'s weights instead of new ones."""

    config: Callable[[Config, int], Config] | None
    from_best: bool = False


#: refit name (``cfg.refit``) -> what it trains after the validated run.
REFITS: Registry[RefitSpec] = Registry("refit")
REFITS.register("none", RefitSpec(None))


# the 1st place's last step: a few epochs on the validation people too, at a tenth of the rate
def _continue(cfg: Config, best_epoch: int) -> Config:
    return cfg.replace(epochs=cfg.refit_epochs, warmup_epochs=0.0, lr=cfg.lr / 10)


REFITS.register("continue", RefitSpec(_continue, from_best=True))
REFITS.register("all", RefitSpec(lambda c, best: c.replace(epochs=best)))


def refit(job: Job, done: Epochs, best: dict[str, Any]) -> Callable[[pd.DataFrame], np.ndarray]:
    """Train ``job.cfg.refit`` on the training and validation people (``best``: the loaded
    ``best.pt``), write ``refit.pt`` (rank 0), and return the predictions of its weights."""
    spec = REFITS.get(job.cfg.refit)
    assert spec.config is not None, "refit 'none' trains nothing"
    cfg = spec.config(job.cfg, int(best["epoch"]))
    rjob = dataclasses.replace(job, cfg=cfg)
    everyone = pd.concat([done.splits.training, done.splits.val], ignore_index=True)
    checkpoint.seed_everything(cfg.seed)  # refit "all" starts from the run's initial weights
    weights = best["model"] if spec.from_best else None
    t = build_trainer(rjob, everyone, done.pictures, done.transform, weights)
    t.parts.module = distributed.training_module(t.parts.model, cfg, job.ctx, job.device)
    _log.info("refit %s: %d epochs on %d images", job.cfg.refit, cfg.epochs, len(t.loader.dataset))
    for epoch in range(1, cfg.epochs + 1):
        mixer = t.start_epoch(cfg, epoch)
        loss, lr = train_one_epoch(t.parts, t.loader, t.criterion, cfg, epoch, mixer)
        _log.info("refit epoch %d/%d  train_loss %.4f  lr %.2e", epoch, cfg.epochs, loss, lr)
    if job.ctx.is_main:
        path = job.run_dir / rundir.REFIT
        checkpoint.save_best(path, t.parts.evaluated, job.cfg.to_dict(), cfg.epochs, math.nan)
    return _predictor(t.parts.evaluated, cfg, done.pictures, job.ctx)


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
    mixer: Mixer | None = None, heartbeat: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[float, float]:  # fmt: skip
    """Train ``parts.trained`` for one epoch: (mean loss per image, learning rate of its last
    optimizer step). The scheduler and the weight average advance once per optimizer step
    (``cfg.grad_accum`` batches), counting updates from the run's start. ``mixer`` mixes
    every batch (its targets become soft). Progress is shown as :mod:`kit.progress` says, and
    ``heartbeat`` gets its figures."""
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
            hard = targets
            if mixer is not None:
                images, targets = mixer(images, targets)
            with torch.autocast(device.type, enabled=scaler.is_enabled()):
                output = model(images)
                loss = criterion(output, targets)
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
                lr = float(optimizer.param_groups[0]["lr"])
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                updates += 1
                parts.scheduler.step_update(num_updates=updates)
                parts.update_ema(updates)
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
    paths = df["path"].astype(str).tolist() if views_of.crops else []
    crops = crop_sources(views_of, cfg, data.resolve_data_dir(cfg), paths)
    crop_loaders = [data.frame_loader(df, c.cfg, c.loader, batch_size) for c in crops]
    use_amp, was_training = bool(cfg.amp) and device.type == "cuda", model.training
    model.eval()
    chunks, start = [], 0
    try:
        for (images, _), *others in zip(loader, *crop_loaders, strict=True):
            images = images.to(device, non_blocking=True)
            batches = [c.view(o, images, start) for c, (o, _) in zip(crops, others, strict=True)]
            start += len(images)
            if cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
                batches = [b.contiguous(memory_format=torch.channels_last) for b in batches]
            with torch.autocast(device.type, enabled=use_amp):
                views = [to_probs(model(v), kind) for v in views_of(images, batches)]
            chunks.append((sum(views) / len(views)).float().cpu())
    finally:
        model.train(was_training)
    if not chunks:
        return np.zeros((0, OUTPUT_KINDS.get(kind).width))
    return torch.cat(chunks).numpy().astype(np.float64)
