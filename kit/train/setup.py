"""What a run starts from, before its folder is written: the config checked in full with the
folder it resumes (:func:`check`), then the data, the model and their :class:`Trainer`, new or
restored from ``last.pt`` (:func:`prepare`): a refusal leaves no run folder behind. Once the
folder is open, the :class:`Job` says which folder this process trains, on which device, and
writes its ``status.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import albumentations as A
import pandas as pd
import torch
from torch import nn

from kit import runfolder as rundir
from kit import splits as kit_splits
from kit.config import Config, check_registries
from kit.data import sampling
from kit.data.pseudo import check_pseudo_sources
from kit.heads import head_target
from kit.losses import build_criterion
from kit.mixing import Mixer, build_mixer, mix_active
from kit.models import Weights, create_model
from kit.optim import Parts, build_parts, check_scheduler_kwargs, freeze_backbone, optimizer_steps
from kit.runfolder.read import check_resumable, check_unchanged, nothing_to_train
from kit.seeding import seed_everything, set_determinism
from kit.splits import Splits, drop_ages
from kit.tracking import Hook, Trackers
from kit.train import data, distributed
from kit.train.checkpoint import TrainState, load, restore

__all__ = ["Job", "Ready", "Trainer", "build_trainer", "check", "prepare"]


def check(cfg: Config) -> Config:
    """``cfg`` checked in full (then shrunk to its smoke variant with ``smoke``), with the
    folder it resumes: everything that can be refused is refused before a folder is written."""
    if cfg.resume:  # a fresh process: what the run registered comes from its folder's code
        rundir.ensure_run_code(cfg.resume, cfg)
    for checked in (cfg, cfg.smoke_variant()) if cfg.smoke else (cfg,):
        checked.validate()
        check_registries(checked)  # every registry is loaded once kit.train is imported
        check_scheduler_kwargs(checked.scheduler, checked.scheduler_kwargs)
        check_pseudo_sources(checked.pseudo_labels)
    if checked.resume and nothing_to_train(checked):
        check_unchanged(checked, Path(checked.resume))  # a finished run: nothing else to check
    elif checked.resume:
        check_resumable(checked, Path(checked.resume))
    return checked


@dataclass(frozen=True)
class Job:
    """One process's share of one open run folder, built once the folder is written."""

    cfg: Config
    run_dir: Path
    device: torch.device
    ctx: distributed.DistContext = distributed.SINGLE
    weights: Weights | None = None  # resolved before the run folder was made (kit.pretrained)
    hooks: Sequence[Hook] = ()  # fit's epoch hooks, opened with the --track trackers
    trackers: Trackers = field(default_factory=Trackers)  # opened by train_run (rank 0)

    def write_status(
        self,
        status: str,
        epoch: int,
        error: str | None = None,
        progress: dict[str, Any] | None = None,
    ) -> None:
        """The run's status.json (rank 0 only): ``progress`` says where the epoch in training
        stands (the heartbeat, while "running")."""
        if self.ctx.is_main:
            rundir.write_status(self.run_dir, status, epoch, error, progress=progress)


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
    rank: int = 0  # the torchrun process (0 alone)

    def start_epoch(self, cfg: Config, epoch: int) -> Mixer | None:
        """Seed every random draw of ``epoch`` from ``(cfg.seed, epoch)`` alone (a resumed run
        repeats it exactly); the mixer to use in it."""
        seed = sampling.epoch_seed(cfg.seed, epoch)
        # numpy's and torch's generators draw the mixing, the device augmentation and dropout:
        # each torchrun process draws its own; the loader's shuffle must agree across them
        seed_everything(sampling.epoch_seed(seed, self.rank) if self.rank else seed)
        self.generator.manual_seed(seed)
        self.train_tf.set_random_seed(seed)
        if cfg.freeze_epochs:  # off, the model's own requires_grad (layers a user froze) stands
            freeze_backbone(self.parts.model, frozen=epoch <= cfg.freeze_epochs)
        active = mix_active(epoch, mix=cfg.mix, epochs=cfg.epochs, off_epochs=cfg.mix_off_epochs)
        return self.mixer if active else None


def build_trainer(
    cfg: Config,
    rows: pd.DataFrame,
    pictures: data.RunPictures,
    augment: A.BasicTransform | None,
    *,
    device: torch.device,
    ctx: distributed.DistContext = distributed.SINGLE,
    pretrained: Weights | None = None,
    weights: dict[str, Any] | None = None,
) -> Trainer:
    """The :class:`Trainer` of ``cfg`` on ``rows`` (people of ``cfg.drop_ages`` left out) in
    process ``ctx`` on ``device``, its model built from ``pretrained`` (the resolved starting
    weights) and then loaded with ``weights`` (a state dict) when given."""
    train_ds = data.train_dataset(
        cfg, drop_ages(rows, cfg.drop_ages), head_target(cfg.head), pictures, augment
    )
    generator = torch.Generator()
    loader = sampling.train_loader(train_ds, cfg, generator, ctx.rank, ctx.world_size)
    model = distributed.prepare_model(create_model(cfg, weights=pretrained).to(device), cfg)
    if weights is not None:
        model.load_state_dict(weights)
    criterion = build_criterion(cfg, train_ds.targets).to(device)
    steps = optimizer_steps(loader, cfg.max_steps_per_epoch, cfg.grad_accum)
    parts = build_parts(cfg, model, steps, device)
    mixer = build_mixer(
        cfg.mix,
        pairs=cfg.mix_pairs,
        alpha=cfg.mix_alpha,
        lam=cfg.mix_lam,
        prob=cfg.mix_prob,
        head=cfg.head,
    )
    return Trainer(loader, generator, train_ds.transform, criterion, parts, mixer, ctx.rank)


@dataclass
class Ready:
    """A run from its first epoch to its end: built by :func:`prepare` before its folder is
    written (so bad data, a model that does not fit its weights or a damaged ``last.pt`` leave
    no run folder behind, and a resumed folder untouched), then kept current by the epoch loop
    (``state``, ``rows``) for the end of the run."""

    splits: Splits
    pictures: data.RunPictures
    trainer: Trainer
    state: TrainState  # restored from last.pt when resuming
    rows: list[dict[str, Any]]  # metrics.csv rows of the epochs done
    transform: A.BasicTransform | None  # the recipe's training augmentations, if any


def prepare(
    cfg: Config,
    train_transform: A.BasicTransform | None,
    device: torch.device,
    ctx: distributed.DistContext = distributed.SINGLE,
    weights: Weights | None = None,
) -> Ready:
    """The data (read and checked), the picture cache and the :class:`Trainer` of ``cfg``
    (starting from the resolved ``weights``), restored from ``cfg.resume``'s ``last.pt`` when
    resuming. Nothing is written to a run folder (the new one does not exist yet)."""
    set_determinism(cfg.deterministic)
    seed_everything(cfg.seed)
    splits = kit_splits.load_splits(cfg)
    pictures = data.RunPictures.for_run(cfg, splits, ctx, progress=not cfg.quiet)
    t = build_trainer(
        cfg, splits.training, pictures, train_transform, device=device, ctx=ctx, pretrained=weights
    )
    state, rows = TrainState(), []
    if cfg.resume:
        resumed = Path(cfg.resume)
        restore(load(resumed / rundir.LAST, device), t.parts, state)
        rows = [r for r in rundir.read_metrics(resumed) if r["epoch"] <= state.epoch]
    return Ready(splits, pictures, t, state, rows, train_transform)
