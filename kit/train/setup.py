"""What a run starts from, before its folder is written: the config checked in full with the
folder it resumes (:func:`check`), then the data, the picture loaders, the model and their
:class:`Trainer`, new or restored from ``last.pt`` (:func:`prepare`); a refusal leaves no run
folder behind. Once the folder is open, the :class:`Job` says which folder this process trains,
on which device, and writes its ``status.json``.

With ``cfg.cache`` every picture is decoded, cropped and resized once by
:class:`kit.data.pictures.PreparedLoader` into a memory-mapped cache (:mod:`kit.data.image_cache`);
a face crop without it reads through the same loader (it needs each picture's face box). The
pixels are identical either way, shipped as uint8 and normalised on the model's device.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
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
from kit.data._common import usable_cores
from kit.data.dataset import CropChoice, FlipChoice, ImageDataset, load_rgb
from kit.data.image_cache import ImageCache, cache_dir_for
from kit.data.pictures import FaceBoxes, PreparedLoader, build_run_cache
from kit.data.pseudo import check_pseudo_sources, soft_targets
from kit.device import seed_everything, set_determinism
from kit.faces import other_crop, prepared_loader
from kit.losses import build_criterion
from kit.mixing import Mixer, build_mixer, mix_active
from kit.models import Weights, create_model, head_soft_target, head_target
from kit.optim import Parts, build_parts, check_scheduler_kwargs, freeze_backbone, optimizer_steps
from kit.runfolder.read import check_resumable, check_unchanged, nothing_to_train
from kit.splits import Splits, drop_ages, run_paths
from kit.tracking import Hook, Trackers
from kit.train.checkpoint import TrainState, load, restore
from kit.train.distributed import SINGLE, DistContext, barrier, prepare_model
from kit.transforms import CROP_MODES, OTHER_CROP, build_transforms, normalization

__all__ = [
    "Job",
    "Ready",
    "RunPictures",
    "Trainer",
    "build_trainer",
    "check",
    "inputs_record",
    "prepare",
    "train_dataset",
    "training_reader",
]


# ---- the picture cache ---------------------------------------------------------------------
@dataclass
class RunPictures:
    """The picture loaders of one run. ``cache`` None: every picture is decoded from its file
    (``train`` is ``load_rgb``, ``eval`` None), or prepared around its face by a
    :class:`PreparedLoader` (face crop); else both read the cache (prepared pictures). With
    ``--crop-mix``, ``train`` is a :class:`CropChoice` between the run's crop and the other
    (``other_cache`` holds the other crop's pictures when ``cache`` is on)."""

    train: Any
    eval: Any
    cache: ImageCache | None
    faces: FaceBoxes | None = None  # the face boxes of a face crop or a crop mix
    other_cache: ImageCache | None = None

    @property
    def prepared(self) -> bool:
        """Whether the loaders return cropped, resized pictures (for ``prepared=True``)."""
        return self.cache is not None or isinstance(self.train, (PreparedLoader, CropChoice))

    @classmethod
    def for_run(
        cls, cfg: Config, data: Splits, ctx: DistContext = SINGLE, progress: bool = True
    ) -> RunPictures:
        """The pictures of ``data`` as ``cfg.cache``, ``cfg.crop_mode`` and ``cfg.crop_mix``
        say; with several processes, rank 0 finds the face boxes and builds the caches (in
        ``cfg.cache_dir`` or ``<data_dir>/cache``) while the others wait, then they reuse them."""
        needs_boxes = CROP_MODES.get(cfg.crop_mode).needs_boxes
        if not cfg.cache and not needs_boxes and not cfg.crop_mix:
            return cls(load_rgb, None, None)
        paths, folder = run_paths(data), cache_dir_for(cfg.cache_dir, data.data_dir)

        def build(show: bool) -> RunPictures:
            cores = usable_cores()
            own = prepared_loader(cfg, data.data_dir, paths, workers=cores, progress=show)
            cache = build_run_cache(cfg, paths, folder, show, loader=own) if cfg.cache else None
            train, faces, other_cache = training_reader(cfg, own, cache), own.faces, None
            if cfg.crop_mix:  # the other crop's pictures (a centre run's face boxes, found once)
                mode = OTHER_CROP[cfg.crop_mode]
                other, applies = other_crop(cfg, mode, data.data_dir, paths, cores, show, faces)
                if cfg.cache:
                    other_cache = build_run_cache(other.cfg, paths, folder, show, loader=other)
                other_train = training_reader(cfg, other, other_cache)
                train = CropChoice(train, other_train, cfg.crop_mix, applies)
                faces = faces or other.faces
            return cls(train, cache or own, cache, faces, other_cache)

        if ctx.is_main:
            pictures = build(progress)
        barrier(ctx)
        return pictures if ctx.is_main else build(False)


def training_reader(cfg: Config, loader: PreparedLoader, cache: ImageCache | None) -> Any:
    """What training reads a crop's pictures with: its cache (a stored mirror image or not,
    seeded, with ``cache_flips``), else its loader."""
    if cache is None:
        return loader
    return FlipChoice(cache) if cfg.cache_flips else cache


def inputs_record(cfg: Config, weights: Weights | None, faces: FaceBoxes | None) -> dict[str, Any]:
    """env.json's records of what a run's model starts from: the pretrained weights (source,
    hub id or file, sha256; None from scratch), the normalisation they imply, and the face
    boxes' found / fallback counts (face crop only)."""
    return {
        "weights": None if weights is None else weights.to_dict(),
        "normalization": dataclasses.asdict(normalization(cfg)),
        "faces": None if faces is None else faces.record(),
    }


# ---- datasets and loaders ------------------------------------------------------------------
def train_dataset(
    cfg: Config,
    df: pd.DataFrame,
    target: Callable[[int], Any],
    pictures: RunPictures,
    augment: A.BasicTransform | None = None,
) -> ImageDataset:
    """The training rows ``df`` with their ``target`` (the head's; with soft pseudo-labels
    among the rows, ``cfg.head``'s soft target) under ``cfg``'s training transform, as uint8
    pictures (``kit.batch.to_model_input`` normalises them on the device); ``augment``
    replaces the preset's augmentations."""
    train_tf, _ = build_transforms(cfg, augment=augment, prepared=pictures.prepared, tensor=False)
    soft = soft_targets(df)  # soft pseudo-labels: every row trains on the head's soft target
    target = target if soft is None else head_soft_target(cfg.head)
    return ImageDataset(df, train_tf, "label", cfg.age_thresholds, target, pictures.train, soft)


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
    ctx: DistContext = SINGLE
    weights: Weights | None = None  # resolved before the run folder was made (kit.models)
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

    def close(self) -> None:
        """End the loader's worker processes (kept between epochs): the training is over."""
        sampling.close_workers(self.loader)


def build_trainer(
    cfg: Config,
    rows: pd.DataFrame,
    pictures: RunPictures,
    augment: A.BasicTransform | None,
    *,
    device: torch.device,
    ctx: DistContext = SINGLE,
    pretrained: Weights | None = None,
    weights: dict[str, Any] | None = None,
) -> Trainer:
    """The :class:`Trainer` of ``cfg`` on ``rows`` (people of ``cfg.drop_ages`` left out) in
    process ``ctx`` on ``device``, its model built from ``pretrained`` (the resolved starting
    weights) and then loaded with ``weights`` (a state dict) when given."""
    train_ds = train_dataset(
        cfg, drop_ages(rows, cfg.drop_ages), head_target(cfg.head), pictures, augment
    )
    generator = torch.Generator()
    loader = sampling.train_loader(train_ds, cfg, generator, ctx.rank, ctx.world_size)
    model = prepare_model(create_model(cfg, weights=pretrained).to(device), cfg)
    if weights is not None:
        model.load_state_dict(weights)
    criterion = build_criterion(cfg, train_ds.targets).to(device)
    steps = optimizer_steps(loader, cfg.max_steps_per_epoch, cfg.grad_accum)
    parts = build_parts(cfg, model, steps, device)
    mixing = {k: getattr(cfg, f"mix_{k}") for k in ("pairs", "alpha", "lam", "prob")}
    mixer = build_mixer(cfg.mix, head=cfg.head, **mixing)
    return Trainer(loader, generator, train_ds.transform, criterion, parts, mixer, ctx.rank)


@dataclass
class Ready:
    """A run from its first epoch to its end: built by :func:`prepare`, then kept current by
    the epoch loop (``state``, ``rows``) for the end of the run."""

    splits: Splits
    pictures: RunPictures
    trainer: Trainer
    state: TrainState  # restored from last.pt when resuming
    rows: list[dict[str, Any]]  # metrics.csv rows of the epochs done
    transform: A.BasicTransform | None  # the recipe's training augmentations, if any


def prepare(
    cfg: Config,
    train_transform: A.BasicTransform | None,
    device: torch.device,
    ctx: DistContext = SINGLE,
    weights: Weights | None = None,
) -> Ready:
    """The data (read and checked), the picture cache and the :class:`Trainer` of ``cfg``
    (starting from the resolved ``weights``), restored from ``cfg.resume``'s ``last.pt`` when
    resuming. Nothing is written to a run folder (the new one does not exist yet): bad data, a
    model that does not fit its weights or a damaged ``last.pt`` leave none behind, and a
    resumed folder untouched."""
    set_determinism(cfg.deterministic)
    seed_everything(cfg.seed)
    splits = kit_splits.load_splits(cfg)
    pictures = RunPictures.for_run(cfg, splits, ctx, progress=not cfg.quiet)
    t = build_trainer(
        cfg, splits.training, pictures, train_transform, device=device, ctx=ctx, pretrained=weights
    )
    state, rows = TrainState(), []
    if cfg.resume:
        resumed = Path(cfg.resume)
        restore(load(resumed / rundir.LAST, device), t.parts, state)
        rows = [r for r in rundir.read_metrics(resumed) if r["epoch"] <= state.epoch]
    return Ready(splits, pictures, t, state, rows, train_transform)
