"""What a run starts from, before its folder is written: the config checked in full with the
folder it resumes (:func:`check`), then the data, the model and their :class:`Trainer`, new or
restored from ``last.pt`` (:func:`prepare`): a refusal leaves no run folder behind. And the
checkpoints: ``best.pt`` (weights + config, for inference) and ``last.pt`` (the parts,
progress and random states, for ``--resume``), tensors and plain values that load with
``torch.load(..., weights_only=True)``, written through :func:`kit.io.atomic_path`.
"""

from __future__ import annotations

import errno
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import albumentations as A
import pandas as pd
import torch
from torch import nn

from kit import io
from kit import runfolder as rundir
from kit import splits as kit_splits
from kit.cli import signals_held
from kit.config import Config, check_registries
from kit.data import sampling
from kit.data.pseudo import check_pseudo_sources
from kit.heads import head_target
from kit.io import atomic_path
from kit.losses.criterion import build_criterion
from kit.mixing import Mixer, build_mixer, mix_active
from kit.models import Weights, create_model
from kit.optim import Parts, build_parts, check_scheduler_kwargs, freeze_backbone, optimizer_steps
from kit.runfolder.resume import check_resumable, check_unchanged, nothing_to_train
from kit.seeding import rng_state, seed_everything, set_determinism, set_rng_state
from kit.splits import Splits, drop_ages
from kit.tracking import Hook, Trackers
from kit.train import data, distributed

__all__ = ["Job", "Ready", "TrainState", "Trainer", "build_trainer", "check", "last_epoch"]
__all__ += ["load", "prepare", "restore", "save_best", "save_last"]

_DISK_FIX = "free space (old runs' last.pt, caches), then continue with --resume {run}"
#: what torch.save's C++ writer says when the OS refused a write (it raises RuntimeError)
_WRITE_FAILED = ("inline_container", "file write failed", "write failed")


@dataclass
class TrainState:
    """Progress of a run between epochs."""

    epoch: int = 0  # last completed epoch
    best_score: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best score (early stopping)


def _save(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` through :func:`kit.io.atomic_path`. torch reports a full disk as a
    RuntimeError of its writer, not as OSError; by the time it arrives here the temporary file
    is closed and deleted (the space it took is free again, so status.json can still record the
    failure) and it becomes an :class:`~kit.io.OutputError` saying so. kit opens the file
    itself: given a path, torch's writer holds the descriptor, and the traceback holds the
    writer, so the deleted file's blocks stayed taken until the error was forgotten."""
    try:
        # torch writes through fh's Python write: a Ctrl-C inside it would become torch's
        # "file write failed"; held, it comes after the file is whole (or removed)
        with signals_held(), atomic_path(path) as tmp, open(tmp, "wb") as fh:
            torch.save(obj, fh)
    except RuntimeError as err:
        if not any(text in str(err) for text in _WRITE_FAILED):
            raise
        free = shutil.disk_usage(path.parent).free // 2**20
        reason = f"the disk is full at {path.parent} ({free} MB free)"
        full = OSError(errno.ENOSPC, reason)
        raise io.output_error(path, full, _DISK_FIX.format(run=path.parent), reason) from err


def save_best(
    path: Path, model: nn.Module, config: dict[str, Any], epoch: int, score: float
) -> None:
    """Weights and config of the best epoch so far."""
    _save({"model": model.state_dict(), "config": config, "epoch": epoch, "score": score}, path)


def save_last(path: Path, parts: Parts, state: TrainState, config: dict[str, Any]) -> None:
    """Every saved part's state, the progress, the random states and the config."""
    obj: dict[str, Any] = {name: getattr(parts, name).state_dict() for name in Parts.SAVED}
    if parts.ema is not None:
        obj["ema"] = parts.ema.module.state_dict()  # plain weight names, like "model"
    obj.update(state=asdict(state), rng=rng_state(), config=config)
    _save(obj, path)


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint written here, naming the file when it is missing or unreadable."""
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch and pickle raise many types for a damaged file
        first = (str(err).strip().splitlines() or [""])[0][:200]
        raise ValueError(
            f"cannot read checkpoint {path} ({type(err).__name__}: {first}): the file is damaged "
            f"or was not written by kit (--resume needs a run folder's last.pt, inference its "
            f"best.pt)"
        ) from err


def last_epoch(path: Path) -> int | None:
    """The epoch a ``last.pt`` holds (None when there is none or it cannot be read): what a
    ``--resume`` would continue from. Memory-mapped, so a large checkpoint is not read whole."""
    if not path.is_file():
        return None
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(ckpt["state"]["epoch"])
    except Exception:  # a damaged file: nothing to resume from
        return None


def restore(ckpt: dict[str, Any], parts: Parts, state: TrainState) -> None:
    """Load every saved part's state, the random states and (into ``state``) the progress
    from a ``last.pt``."""
    for name in Parts.SAVED:
        getattr(parts, name).load_state_dict(ckpt[name])
    if parts.ema is not None and "ema" in ckpt:
        parts.ema.module.load_state_dict(ckpt["ema"])
    elif parts.ema is not None:  # resumed with --ema from a run that had none: start it here
        parts.ema.set(parts.model)
    set_rng_state(ckpt["rng"])
    for key, value in ckpt["state"].items():
        setattr(state, key, value)


def check(cfg: Config) -> Config:
    """``cfg`` checked in full (then shrunk to its smoke variant with ``smoke``), with the
    folder it resumes: everything that can be refused is refused before a folder is written."""
    if cfg.resume:  # a fresh process: what the run registered comes from its folder's code
        rundir.ensure_run_code(cfg.resume, cfg)
    for checked in (cfg, cfg.smoke_variant()) if cfg.smoke else (cfg,):
        checked.validate()
        check_registries(checked)  # every registry is loaded once kit.train is imported
        check_scheduler_kwargs(checked)
        check_pseudo_sources(checked)
    if checked.resume and nothing_to_train(checked):
        check_unchanged(checked, Path(checked.resume))  # a finished run: nothing else to check
    elif checked.resume:
        check_resumable(checked, Path(checked.resume))
    return checked


# ---- what a run starts from: its job and its Trainer, new or restored from last.pt ----
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
        return self.mixer if mix_active(cfg, epoch) else None


def build_trainer(
    job: Job,
    rows: pd.DataFrame,
    pictures: data.RunPictures,
    augment: A.BasicTransform | None,
    weights: dict[str, Any] | None = None,
) -> Trainer:
    """The :class:`Trainer` of ``job.cfg`` on ``rows`` (people of ``cfg.drop_ages`` left out),
    its model starting from ``weights`` when given."""
    cfg, device, ctx = job.cfg, job.device, job.ctx
    train_ds = data.train_dataset(
        cfg, drop_ages(rows, cfg.drop_ages), head_target(cfg.head), pictures, augment
    )
    generator = torch.Generator()
    loader = sampling.train_loader(train_ds, cfg, generator, ctx.rank, ctx.world_size)
    model = distributed.prepare_model(create_model(cfg, weights=job.weights).to(device), cfg)
    if weights is not None:
        model.load_state_dict(weights)
    criterion = build_criterion(cfg, train_ds.targets).to(device)
    parts = build_parts(cfg, model, optimizer_steps(loader, cfg), device)
    mixer = build_mixer(cfg)
    return Trainer(loader, generator, train_ds.transform, criterion, parts, mixer, ctx.rank)


@dataclass
class Ready:
    """What a run needs before its first epoch, built by :func:`prepare` before its folder is
    written, so that bad data, a model that does not fit its weights or a damaged ``last.pt``
    leave no run folder behind (and a resumed folder untouched)."""

    splits: Splits
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
    set_determinism(cfg.deterministic)
    seed_everything(cfg.seed)
    splits = kit_splits.load_splits(cfg)
    pictures = data.RunPictures.for_run(cfg, splits, ctx, progress=not cfg.quiet)
    t = build_trainer(job, splits.training, pictures, train_transform)
    state, rows = TrainState(), []
    if cfg.resume:
        resumed = Path(cfg.resume)
        restore(load(resumed / rundir.LAST, device), t.parts, state)
        rows = [r for r in rundir.read_metrics(resumed) if r["epoch"] <= state.epoch]
    return Ready(splits, pictures, t, state, rows, train_transform)
