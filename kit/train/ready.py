"""Everything checked and built before a run folder is written: the config (:func:`check`,
and what ``--smoke`` shrinks, :func:`smoke_note`), then the data, the picture cache, the model
and its training parts (:func:`prepare`, restored from ``last.pt`` when resuming).

Bad data, a bad config, a model that does not fit its weights or a damaged ``last.pt`` are
refused here, so they leave no run folder behind (and a resumed folder is left untouched).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import albumentations as A
import torch
from torch import nn

from kit import runfolder as rundir
from kit.config import Config, check_registries
from kit.data import sampling
from kit.data.pseudo import check_pseudo_sources
from kit.heads import head_target
from kit.models import Weights, create_model
from kit.train import checkpoint, data, distributed
from kit.train.checkpoint import Parts, TrainState, check_resumable
from kit.train.optim import build_criterion, check_scheduler_kwargs

__all__ = ["Ready", "check", "epoch_steps", "optimizer_steps", "prepare", "smoke_note"]


def check(cfg: Config) -> Config:
    """``cfg`` checked in full (then shrunk to its smoke variant with ``smoke``), with the
    folder it resumes: everything that can be refused is refused before a folder is written."""
    for checked in (cfg, cfg.smoke_variant()) if cfg.smoke else (cfg,):
        checked.validate()
        check_registries(checked)  # every registry is loaded once kit.train is imported
        check_scheduler_kwargs(checked)
        check_pseudo_sources(checked)
    if checked.resume:
        check_resumable(checked, Path(checked.resume))
    return checked


def smoke_note(cfg: Config, small: Config) -> str:
    """``smoke: epochs 20 -> 2, image_size 380x380 -> 64x48, ...``: what ``--smoke`` changed."""

    def show(value: object) -> str:
        return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)

    changed = [
        f"{f.name} {show(getattr(cfg, f.name))} -> {show(getattr(small, f.name))}"
        for f in dataclasses.fields(Config)
        if f.name != "smoke" and getattr(cfg, f.name) != getattr(small, f.name)
    ]
    return "smoke: " + (", ".join(changed) or "nothing to shrink")


@dataclass
class Ready:
    """Everything a run needs before its first epoch, built by :func:`prepare` before the run
    folder is written, so that bad data, a bad model or a damaged ``last.pt`` leave no folder."""

    splits: data.Splits
    pictures: data.RunPictures
    train_tf: Any
    generator: torch.Generator
    loader: Any
    criterion: nn.Module
    parts: Parts
    state: TrainState  # restored from last.pt when resuming
    rows: list[dict[str, Any]]  # metrics.csv rows of the epochs already done


def prepare(
    cfg: Config, device: torch.device, ctx: distributed.DistContext,
    train_transform: A.BasicTransform | None, weights: Weights | None = None,
) -> Ready:  # fmt: skip
    """The data (read and checked), the picture cache, the model (from ``weights``, resolved
    by :mod:`kit.pretrained`) and its training parts of ``cfg``, restored from
    ``cfg.resume``'s ``last.pt`` when resuming."""
    checkpoint.set_determinism(cfg.deterministic)
    checkpoint.seed_everything(cfg.seed)
    splits = data.load_splits(cfg)
    pictures = data.RunPictures.for_run(cfg, splits, ctx, progress=not cfg.quiet)
    target = head_target(cfg.head)
    train_ds = data.train_dataset(cfg, splits.training, target, pictures, train_transform)
    generator = torch.Generator()
    loader = sampling.train_loader(train_ds, cfg, generator, ctx.rank, ctx.world_size)
    model = distributed.prepare_model(create_model(cfg, weights=weights).to(device), cfg)
    criterion = build_criterion(cfg, train_ds.targets).to(device)
    parts = checkpoint.build_parts(cfg, model, optimizer_steps(loader, cfg), device)
    state, rows = TrainState(), []
    if cfg.resume:
        run_dir = Path(cfg.resume)
        checkpoint.restore(checkpoint.load(run_dir / rundir.LAST, device), parts, state)
        rows = [r for r in rundir.read_metrics(run_dir) if r["epoch"] <= state.epoch]
    return Ready(
        splits, pictures, train_ds.transform, generator, loader, criterion, parts, state, rows
    )


def epoch_steps(loader: Any, cfg: Any) -> int:
    """Batches per training epoch (``max_steps_per_epoch`` caps it)."""
    return min(len(loader), cfg.max_steps_per_epoch or len(loader))


def optimizer_steps(loader: Any, cfg: Any) -> int:
    """Optimizer steps per epoch, after gradient accumulation."""
    return math.ceil(epoch_steps(loader, cfg) / cfg.grad_accum)
