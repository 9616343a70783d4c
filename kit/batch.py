"""The batch as the model sees it, made on the model's device from the loaders' uint8 pictures.

kit's loaders ship augmented pictures as uint8 (B, H, W, 3) (``build_transforms(cfg,
tensor=False)``): a quarter of float32's bytes through the worker queues and the copy to the
GPU. :func:`to_model_input` moves the batch to the device, converts it to float, normalises it
with the run's mean and std and lays it out for the model, giving to the bit what the CPU path
(``A.Normalize``, then ``ToTensorV2``) gives.

``cfg.device_aug`` (:data:`DEVICE_AUGS`, kornia presets; docs/speed.md, "Where to augment")
augments training batches only, as float (B, 3, H, W) in [0, 1] between the conversion and the
normalisation. kornia draws every parameter per picture, as the CPU presets do (torchvision's
``transforms.v2`` draws one set per call), from torch's global generator, which training
re-seeds every epoch: a resumed run repeats the augmentations exactly. ``strong`` is the CPU
``strong`` preset with its probabilities and ranges; docs/speed.md lists where it differs.
A preset is a function ``cfg -> module or None``: register one of your own with
``@kit.DEVICE_AUGS.register("name")`` and choose it with ``--device-aug name``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import albumentations as A
import kornia.augmentation as K
import torch
from torch import nn

from kit.config import Config
from kit.registry import Registry
from kit.transforms import MEAN, STD

__all__ = ["DEVICE_AUGS", "create_device_aug", "to_model_input"]


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
    device: torch.device,
    *,
    mean: tuple[float, ...] = MEAN,
    std: tuple[float, ...] = STD,
    channels_last: bool = False,
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """``images`` on ``device`` as the model takes them: a uint8 (B, H, W, 3) batch of kit's
    loaders becomes float32 (B, 3, H, W) normalised with ``mean`` and ``std`` (0..1 scale; a
    run's are :func:`kit.transforms.normalization`'s); a floating batch (already normalised,
    e.g. from a loader of one's own) is only moved. Channels-last with ``channels_last``.
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
        shift, scale = _constants(tuple(mean), tuple(std), images.device)
        # the permuted view is already channels-last in memory, and float() keeps that layout
        pixels = images.permute(0, 3, 1, 2).float()
        if augment is not None:
            with torch.no_grad():  # no gradient flows into the pictures
                pixels = augment(pixels / 255.0) * 255.0
        images = (pixels - shift) * scale
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return images.contiguous(memory_format=layout)


#: Augments a float (B, 3, H, W) batch in [0, 1] on its device; the result stays in [0, 1].
DeviceAug = Callable[[torch.Tensor], torch.Tensor]

#: preset name (``cfg.device_aug``) -> ``builder(cfg) -> augmentation, or None for none``.
DEVICE_AUGS: Registry[Callable[[Any], DeviceAug | None]] = Registry("device_aug")


@DEVICE_AUGS.register("none")
def _none(cfg: Config) -> None:
    return None


@DEVICE_AUGS.register("flip")
def _flip(cfg: Config) -> nn.Module:
    return K.RandomHorizontalFlip(p=0.5)


@DEVICE_AUGS.register("strong")
def _strong(cfg: Config) -> nn.Module:
    return nn.Sequential(
        K.RandomHorizontalFlip(p=0.5),
        K.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.03, p=0.5),
        K.RandomContrast(contrast=(0.9, 1.1), p=0.3),
        K.RandomBrightness(brightness=(0.9, 1.1), p=0.3),
        K.RandomAffine(
            degrees=10.0,
            translate=(0.06, 0.06),
            scale=(0.9, 1.1, 0.9, 1.1),
            padding_mode="zeros",
            p=0.5,
        ),
        K.RandomErasing(scale=(0.0025, 0.09), ratio=(1 / 3, 3.0), value=0.0, p=0.3),
    )


def create_device_aug(cfg: Config) -> DeviceAug | None:
    """The training augmentation of ``cfg.device_aug`` (:data:`DEVICE_AUGS`), or None for
    ``none``: pass it to :func:`kit.to_model_input` as ``augment`` for training batches."""
    with DEVICE_AUGS.calling(cfg.device_aug, on=f"the config of run {cfg.name!r}"):
        return DEVICE_AUGS.get(cfg.device_aug)(cfg)
