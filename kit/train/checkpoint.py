"""Checkpoints: ``best.pt`` (weights + config, for inference) and ``last.pt`` (for ``--resume``).

Everything stored is a tensor or a plain Python value, so both load with
``torch.load(..., weights_only=True)``. Writes go through :func:`kit.io.atomic_path`.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from kit.io import atomic_path

__all__ = ["TrainState", "load", "rng_state", "save_best", "save_last", "set_rng_state"]


@dataclass
class TrainState:
    """Progress of a run between epochs."""

    epoch: int = 0  # last completed epoch
    best_score: float = -1.0
    best_epoch: int = 0
    bad_epochs: int = 0  # epochs since the best score (early stopping)


def rng_state() -> dict[str, Any]:
    """The python, numpy and torch (CPU and CUDA) random states as tensors / plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save(obj: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def save_best(
    path: Path, model: nn.Module, config: dict[str, Any], epoch: int, score: float
) -> None:
    """Weights and config of the best epoch so far."""
    _save({"model": model.state_dict(), "config": config, "epoch": epoch, "score": score}, path)


def save_last(path: Path, parts: dict[str, Any], state: TrainState, config: dict[str, Any]) -> None:
    """``parts`` (model, optimizer, schedule, scaler: anything with ``state_dict``) + progress."""
    obj = {name: part.state_dict() for name, part in parts.items()}
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


def restore(ckpt: dict[str, Any], parts: dict[str, Any]) -> TrainState:
    """Load every part's state from a ``last.pt`` and return the saved progress."""
    for name, part in parts.items():
        part.load_state_dict(ckpt[name])
    set_rng_state(ckpt["rng"])
    return TrainState(**ckpt["state"])
