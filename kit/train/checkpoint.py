"""The checkpoints: ``best.pt`` (weights + config, for inference) and ``last.pt`` (the parts,
progress and random states, for ``--resume``), tensors and plain values that load with
``torch.load(..., weights_only=True)``, written through :func:`kit.io.atomic_path`.
"""

from __future__ import annotations

import errno
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kit import io
from kit.cli import signals_held
from kit.device import rng_state, set_rng_state
from kit.io import atomic_path
from kit.optim import Parts

__all__ = ["TrainState", "last_epoch", "load", "restore", "save_best", "save_last"]

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
        fix = f"free space (old runs' last.pt, caches), then continue with --resume {path.parent}"
        raise io.output_error(path, OSError(errno.ENOSPC, reason), fix, reason) from err


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
