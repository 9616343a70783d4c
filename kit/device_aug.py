"""Training augmentation on the model's device, a batch at a time (``cfg.device_aug``).

The CPU presets of :mod:`kit.transforms` augment one picture at a time in the loader workers;
at 224 px ``strong`` costs a worker more than reading the picture (docs/speed.md). The presets
here do the batch-friendly part of that work where the model runs, with kornia's augmentation
modules: :func:`kit.model_input.to_model_input` hands them a training batch as float
(B, 3, H, W) in [0, 1] after its uint8 copy to the device and before normalisation, and
validation, test and TTA batches never pass through them. Batch mixing (CutMix, MixUp, the
half-picture variants) already runs on the device after this, in :mod:`kit.mixing`.

Why kornia: its modules draw every parameter per picture within a batch (``same_on_batch`` is
off), like the CPU presets, where ``torchvision.transforms.v2`` draws one set per call (one
flip decision for the whole batch). Its draws come from torch's global generator, which
training re-seeds from ``(cfg.seed, epoch)`` at the start of every epoch
(``kit.train.setup.Trainer.start_epoch``): the same seed gives the same augmentations
whatever the number of loader workers, and a resumed run repeats them exactly. Under torchrun
each process seeds its own draws (from the epoch's seed and its rank), as for batch mixing.

``strong`` is the counterpart of the CPU ``strong`` preset, with its probabilities and ranges,
and these differences:

- colour jitter: the same torchvision formulas, but the order of its four steps is drawn once
  per batch (albumentations: per picture);
- brightness / contrast: albumentations' ``RandomBrightnessContrast`` (``x * alpha + beta``)
  changes both with p=0.3 together; here contrast (``x * alpha``) and brightness (``x + beta``)
  are two steps, each with p=0.3 on its own;
- affine: the same scale (x and y apart), shift and rotation ranges and black border, sampled
  bilinearly from the float picture (OpenCV on uint8 rounds to whole grey levels);
- cutout: ``CoarseDropout``'s 1-4 holes of 5-15% of each side become one black rectangle of
  0.25-9% of the picture (the area of one small to four large holes) with sides in ratio
  1:3 to 3:1 (kornia's ``RandomErasing`` makes one rectangle per picture);
- the pictures stay float: nothing is rounded back to 256 grey levels.

A preset is a function ``cfg -> module or None``: register one of your own with
``@kit.DEVICE_AUGS.register("name")`` and choose it with ``--device-aug name``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import kornia.augmentation as K
import torch
from torch import nn

from kit.registry import Registry

__all__ = ["DEVICE_AUGS", "create_device_aug"]

#: Augments a float (B, 3, H, W) batch in [0, 1] on its device; the result stays in [0, 1].
DeviceAug = Callable[[torch.Tensor], torch.Tensor]

#: preset name (``cfg.device_aug``) -> ``builder(cfg) -> augmentation, or None for none``.
DEVICE_AUGS: Registry[Callable[[Any], DeviceAug | None]] = Registry("device_aug")


@DEVICE_AUGS.register("none")
def _none(cfg: Any) -> None:
    return None


@DEVICE_AUGS.register("flip")
def _flip(cfg: Any) -> nn.Module:
    return K.RandomHorizontalFlip(p=0.5)


@DEVICE_AUGS.register("strong")
def _strong(cfg: Any) -> nn.Module:
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


def create_device_aug(cfg: Any) -> DeviceAug | None:
    """The training augmentation of ``cfg.device_aug`` (:data:`DEVICE_AUGS`), or None for
    ``none``: pass it to :func:`kit.to_model_input` as ``augment`` for training batches."""
    with DEVICE_AUGS.calling(cfg.device_aug, on=f"the config of run {cfg.name!r}"):
        return DEVICE_AUGS.get(cfg.device_aug)(cfg)
