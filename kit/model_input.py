"""The batch as the model sees it, made on the model's device from the loaders' uint8 pictures.

kit's loaders ship pictures as they are after augmentation: uint8, (B, H, W, 3), collated with
no float conversion (``build_transforms(cfg, tensor=False)``). That is a quarter of float32's
bytes through the worker queues, the pinned memory and the copy to the GPU, and no per-picture
normalisation on a CPU core, as timm's prefetching loader does. :func:`to_model_input` then
moves the batch to the device, converts it to float, normalises it with the run's mean and std
(:func:`kit.transforms.normalization`) and lays it out as the model wants it (channels-last
with ``cfg.channels_last``). The result is the tensor the CPU path ``build_transforms(cfg)``
(``A.Normalize``, then ``ToTensorV2``) gives, to the bit: the same float32 arithmetic, with
albumentations' own constants.

``augment`` (training batches only: :func:`kit.device_aug.create_device_aug`) augments the
batch there as float (B, 3, H, W) in [0, 1], between the conversion and the normalisation.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import albumentations as A
import torch

from kit.transforms import normalization

__all__ = ["to_model_input"]


@functools.lru_cache(maxsize=16)
def _constants(
    mean: tuple[float, ...], std: tuple[float, ...], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    # A.Normalize's own float32 mean * 255 and 1 / (std * 255): (x - m) * d is then its result
    norm = A.Normalize(mean=mean, std=std, max_pixel_value=255.0)
    shape = (1, len(mean), 1, 1)
    as_tensor = functools.partial(torch.as_tensor, dtype=torch.float32, device=device)
    return as_tensor(norm.mean_np).view(shape), as_tensor(norm.denominator).view(shape)


def to_model_input(
    images: torch.Tensor,
    cfg: Any,
    device: torch.device,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``images`` on ``device`` as ``cfg``'s model takes them: a uint8 (B, H, W, 3) batch of
    kit's loaders becomes normalised float32 (B, 3, H, W); a floating batch (already normalised,
    e.g. from a loader of one's own) is only moved. Channels-last when ``cfg.channels_last``.
    ``augment`` maps a uint8 batch, as float (B, 3, H, W) in [0, 1], before normalisation."""
    images = images.to(device, non_blocking=True)
    if augment is not None and images.dtype != torch.uint8:
        raise ValueError(
            f"device augmentation (--device-aug) needs uint8 batches as kit's loaders give "
            f"them, before normalisation; got {images.dtype}: leave augment out (--device-aug "
            f"none) with a loader that normalises itself"
        )
    if images.dtype == torch.uint8:
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"a uint8 batch must be (batch, height, width, 3) pictures as kit's loaders "
                f"give them; got shape {tuple(images.shape)}"
            )
        norm = normalization(cfg)
        mean, scale = _constants(norm.mean, norm.std, images.device)
        # the permuted view is already channels-last in memory, and float() keeps that layout
        pixels = images.permute(0, 3, 1, 2).float()
        if augment is not None:
            with torch.no_grad():  # no gradient flows into the pictures
                pixels = augment(pixels / 255.0) * 255.0
        images = (pixels - mean) * scale
    layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
    return images.contiguous(memory_format=layout)
