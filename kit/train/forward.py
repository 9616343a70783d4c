"""The forward pass over a frame: its rows in order through the run's evaluation transform, as
probabilities. Validation and :mod:`kit.inference` both predict with it, so inference crops,
resizes and normalises exactly like training did (here, below ``kit.inference``, because the
epoch loop needs it too).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from kit.batch import to_model_input
from kit.config import Config
from kit.data.dataset import ImageDataset, collate_pictures
from kit.data.fixture import resolve_data_dir
from kit.data.sampling import resolve_workers
from kit.device import pick_amp
from kit.faces import prepared_loader
from kit.models import OUTPUT_KINDS, head_spec, to_probs
from kit.registry import blaming
from kit.train import distributed
from kit.transforms import CROP_MODES, build_transforms, normalization
from kit.tta import crop_sources, tta_views

__all__ = ["frame_loader", "predict_frame", "predictor"]


def frame_loader(
    df: pd.DataFrame,
    cfg: Config,
    prepared: Any = None,
    batch_size: int | None = None,
    pin_memory: bool = False,
) -> DataLoader:
    """The rows of ``df`` in order, through ``cfg``'s evaluation transform (pictures read by
    ``prepared``, a cache, when given), as uint8 batches for ``kit.batch.to_model_input``;
    targets are -1. A face crop with no ``prepared`` prepares each picture around its stored
    face box (those of the run's data folder)."""
    if prepared is None and CROP_MODES.get(cfg.crop_mode).needs_boxes:
        paths = df["path"].astype(str).tolist()
        prepared = prepared_loader(cfg, resolve_data_dir(cfg), paths, progress=False)
    _, eval_tf = build_transforms(cfg, prepared=prepared is not None, tensor=False)
    source = {} if prepared is None else {"loader": prepared}
    batch_size = batch_size or cfg.eval_batch_size
    return DataLoader(
        ImageDataset(df, eval_tf, labels=None, **source),
        batch_size=batch_size,
        shuffle=False,
        # workers only pay off when they can prepare one batch while another is predicted
        num_workers=resolve_workers(cfg.workers) if len(df) > batch_size else 0,
        pin_memory=pin_memory,
        collate_fn=collate_pictures,
    )


@torch.inference_mode()
def predict_frame(
    model: nn.Module,
    df: pd.DataFrame,
    cfg: Config,
    batch_size: int | None = None,
    tta: str = "none",
    prepared: Any = None,
) -> np.ndarray:
    """(n, 18) probabilities of ``model`` (trained under ``cfg``, on its device) for the rows of
    ``df`` (column ``path``), in row order; a per-task head gives its task's (n, k) instead.
    ``tta`` names the test-time views whose probabilities are averaged (``kit.tta.tta_views``:
    ``"hflip"``, ``"hflip+shift"``, ...; a crop view such as ``"center_face"`` also reads the
    rows under the other crop mode). ``prepared`` reads pictures already cropped and resized
    for ``cfg`` by path (an ``ImageCache``)."""
    views_of = tta_views(tta)
    device = next(model.parameters()).device
    kind = head_spec(cfg.head).kind
    loader = frame_loader(df, cfg, prepared, batch_size, pin_memory=device.type == "cuda")
    crops = []  # the data folder (perhaps the fixture, built on first use) only for crop views
    if views_of.crops:
        paths = df["path"].astype(str).tolist()
        crops = crop_sources(views_of, cfg, resolve_data_dir(cfg), paths)
    crop_loaders = [frame_loader(df, c.cfg, c.loader, batch_size) for c in crops]
    amp, was_training = pick_amp(cfg, device), model.training
    # a crop view differs in its geometry only: the same pixel statistics and layout
    norm = normalization(cfg)
    as_input = partial(
        to_model_input, device=device, mean=norm.mean, std=norm.std, channels_last=cfg.channels_last
    )
    model.eval()
    chunks, start = [], 0
    try:
        for (images, _), *others in zip(loader, *crop_loaders, strict=True):
            images = as_input(images)
            batches = [
                c.view(as_input(o), images, start) for c, (o, _) in zip(crops, others, strict=True)
            ]
            start += len(images)
            on = f"a prediction batch of shape {tuple(images.shape)} ({images.dtype}, {device})"
            with amp.autocast(), blaming(f"model {cfg.model!r} (head {cfg.head!r})", on):
                views = [to_probs(model(v), kind) for v in views_of(images, batches)]
            chunks.append((sum(views) / len(views)).float().cpu())
    finally:
        model.train(was_training)
    if not chunks:
        return np.zeros((0, OUTPUT_KINDS.get(kind).width))
    return torch.cat(chunks).numpy().astype(np.float64)


def predictor(
    model: nn.Module, cfg: Config, pictures: Any, ctx: distributed.DistContext
) -> Callable[[pd.DataFrame], np.ndarray]:
    """Probabilities of ``model`` for a frame, in shares over the processes (on every one)."""
    share = partial(predict_frame, model, cfg=cfg, tta=cfg.tta, prepared=pictures.eval)
    return partial(distributed.predict_sharded, share, ctx=ctx)
