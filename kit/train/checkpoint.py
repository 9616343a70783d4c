"""Checkpoints and resuming: ``best.pt`` (weights + config, for inference), ``last.pt`` (the
training parts, progress and random states of :mod:`kit.seeding`, for ``--resume``), and what
is checked before a run folder is written: the config in full (:func:`check`) and the folder a
run resumes (:mod:`kit.runfolder.resume`). The data, the model and a resumed ``last.pt``
follow, still before the folder (:func:`kit.train.loop.prepare`): none of them leaves a run
folder behind when refused.

Everything stored is a tensor or a plain Python value, so both load with
``torch.load(..., weights_only=True)``. Writes go through :func:`kit.io.atomic_path`.
"""

from __future__ import annotations

import errno
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from timm.utils import ModelEmaV3
from torch import nn

from kit import io
from kit.config import Config, check_registries
from kit.data.pseudo import check_pseudo_sources
from kit.device import pick_amp
from kit.io import atomic_path
from kit.runfolder.resume import check_resumable, check_unchanged, nothing_to_train
from kit.seeding import rng_state, set_rng_state
from kit.train.optim import build_optimizer, build_scheduler, check_scheduler_kwargs

__all__ = [
    "Parts",
    "TrainState",
    "build_parts",
    "check",
    "last_epoch",
    "load",
    "restore",
    "save_best",
    "save_last",
]

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


@dataclass
class Parts:
    """What trains. ``last.pt`` holds the state of every part named in :attr:`SAVED` (and of
    the weight average ``ema`` when there is one)."""

    model: nn.Module  # the plain module: checkpoints keep plain weight names
    optimizer: torch.optim.Optimizer
    scheduler: Any  # a timm scheduler (kit.train.optim)
    scaler: torch.amp.GradScaler
    module: nn.Module | None = None  # what the training step calls (wrapped model); None: model
    ema: ModelEmaV3 | None = None  # the moving average of the weights (cfg.ema)

    SAVED: ClassVar[tuple[str, ...]] = ("model", "optimizer", "scheduler", "scaler")

    @property
    def trained(self) -> nn.Module:
        """The module the training step calls."""
        return self.model if self.module is None else self.module

    @property
    def evaluated(self) -> nn.Module:
        """The weights validation scores, ``best.pt`` keeps and the submission uses: the
        moving average with ``cfg.ema``, else the model itself."""
        return self.model if self.ema is None else self.ema.module

    def update_ema(self, step: int) -> None:
        """Move the average towards the model after optimizer step ``step`` (from 1)."""
        if self.ema is not None:
            self.ema.update(self.model, step=step)


def build_parts(cfg: Any, model: nn.Module, steps_per_epoch: int, device: torch.device) -> Parts:
    """Optimizer, scheduler, gradient scaler and (with ``cfg.ema``) weight average of
    ``model`` (``module`` left unset)."""
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg, steps_per_epoch)
    scaler = pick_amp(cfg, device).scaler()  # enabled for float16 autocast only
    ema = None
    if getattr(cfg, "ema", False):
        # timm's warmup: decay 1 - (1 + step)^-3/4, capped at ema_decay (3/4: timm's advice
        # for runs of under a million steps)
        ema = ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=cfg.ema_warmup, warmup_power=0.75)
    return Parts(model, optimizer, scheduler, scaler, ema=ema)


def _save(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` through :func:`kit.io.atomic_path`. torch reports a full disk as a
    RuntimeError of its writer, not as OSError; by the time it arrives here the temporary file
    is deleted (the space it took is free again, so status.json can still record the failure)
    and it becomes an :class:`~kit.io.OutputError` saying so."""
    try:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
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
