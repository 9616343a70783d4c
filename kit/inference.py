"""Predictions and submissions.

``predict`` always uses the evaluation transform of the run's own config, so inference crops,
resizes and normalises exactly like training did.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from kit.labels import NUM_CLASSES
from kit.transforms import TTA

__all__ = ["TTA", "load_run_model", "predict", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if present, else mps, else cpu; anything else as torch reads it."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def load_run_model(run_dir: str | os.PathLike[str], device: str = "cpu") -> tuple[nn.Module, Any]:
    """(model with the run's best weights, its Config) from a run folder's ``best.pt``."""
    from kit.config import Config
    from kit.models import create_model
    from kit.train.checkpoint import load

    ckpt = load(Path(run_dir) / "best.pt", map_location=device)
    cfg = Config.from_dict(ckpt["config"])
    # the trained weights replace any starting weights, so the file is not needed any more
    model = create_model(cfg.replace(pretrained=False, pretrained_file=None))
    model.load_state_dict(ckpt["model"])
    return model.to(device), cfg


@torch.inference_mode()
def predict(
    model_or_run_dir: nn.Module | str | os.PathLike[str],
    df: pd.DataFrame,
    cfg: Any = None,
    batch_size: int | None = None,
    tta: str = "none",
    prepared: Callable[[str], np.ndarray] | None = None,
) -> np.ndarray:
    """(n, 18) probabilities for the rows of ``df`` (column ``path``), in row order.

    Given a run folder, its ``best.pt`` and config are used (``cfg`` then only chooses the
    device, batch size and workers); given a model, ``cfg`` is its config (required).
    ``tta="hflip"`` averages the probabilities of each picture and its mirror image.
    ``prepared`` reads pictures already cropped and resized for ``cfg`` by path (an
    ``ImageCache``); by default every file is decoded and prepared.
    """
    from kit.data.dataset import ImageDataset
    from kit.heads import head_spec, to_probs
    from kit.train.loaders import resolve_workers
    from kit.transforms import build_transforms

    views_of = TTA.get(tta)
    if isinstance(model_or_run_dir, nn.Module):
        if cfg is None:
            raise ValueError("predict(model, df) needs the model's cfg for its transforms")
        model = model_or_run_dir
        device = next(model.parameters()).device
    else:
        device = resolve_device(cfg.device if cfg is not None else "auto")
        model, run_cfg = load_run_model(model_or_run_dir, device=str(device))
        if cfg is not None:
            run_cfg = run_cfg.replace(
                eval_batch_size=cfg.eval_batch_size, workers=cfg.workers, amp=cfg.amp
            )
        cfg = run_cfg
    kind = head_spec(cfg.head).kind
    _, eval_tf = build_transforms(cfg, prepared=prepared is not None)
    source = {} if prepared is None else {"loader": prepared}
    batch_size = batch_size or cfg.eval_batch_size
    loader = DataLoader(
        ImageDataset(df, eval_tf, labels=None, **source),
        batch_size=batch_size,
        shuffle=False,
        # workers only pay off when they can prepare one batch while another is predicted
        num_workers=resolve_workers(cfg.workers) if len(df) > batch_size else 0,
        pin_memory=device.type == "cuda",
    )
    channels_last = bool(getattr(cfg, "channels_last", False))
    use_amp = bool(cfg.amp) and device.type == "cuda"
    was_training = model.training
    model.eval()
    chunks = []
    try:
        for images, _ in loader:
            images = images.to(device, non_blocking=True)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, enabled=use_amp):
                views = [to_probs(model(v), kind) for v in views_of(images)]
            chunks.append((sum(views) / len(views)).float().cpu())
    finally:
        model.train(was_training)
    if not chunks:
        return np.zeros((0, NUM_CLASSES))
    return torch.cat(chunks).numpy().astype(np.float64)
