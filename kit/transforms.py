"""albumentations pipelines: one config gives the training and the evaluation transform.

Every pipeline is ``prepare`` (centre crop as a fraction of the picture, resize to
``cfg.image_size``), then the preset's augmentations (training only), then ``finish``
(normalise with the competition's pixel statistics, to a CHW float tensor). Train and eval share
``prepare`` and ``finish``, so inference always crops, resizes and normalises like training.

A loader that already returns prepared images (a cache of cropped, resized pictures) pairs with
``build_transforms(cfg, prepared=True)``, which leaves out the crop and resize.

:data:`TTA` holds the test-time views of a batch of prepared tensors, for validation in
training and for inference alike.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.pytorch import ToTensorV2

from kit.registry import Registry

__all__ = ["MEAN", "PRESETS", "STD", "TTA", "FractionCenterCrop", "build_transforms", "prepare"]

#: Pixel statistics of the competition's training photos (RGB, 0..1 scale).
MEAN: tuple[float, float, float] = (0.548, 0.504, 0.479)
STD: tuple[float, float, float] = (0.237, 0.247, 0.246)


class FractionCenterCrop(A.ImageOnlyTransform):
    """Centre crop keeping ``fraction`` = (height, width) shares of the picture, any size."""

    def __init__(self, fraction: tuple[float, float] = (1.0, 1.0), p: float = 1.0) -> None:
        super().__init__(p=p)
        self.fraction = tuple(float(f) for f in fraction)

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        h, w = img.shape[:2]
        ch = max(1, round(h * self.fraction[0]))
        cw = max(1, round(w * self.fraction[1]))
        top, left = (h - ch) // 2, (w - cw) // 2
        return np.ascontiguousarray(img[top : top + ch, left : left + cw])

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("fraction",)


#: preset name -> augmentations applied to the prepared (cropped, resized) uint8 image.
PRESETS: Registry[Callable[[Any], list[A.BasicTransform]]] = Registry("preset")

#: TTA mode -> the views of a batch ``(n, 3, H, W)`` whose probabilities are averaged.
TTA: Registry[Callable[[Any], list[Any]]] = Registry("tta")
TTA.register("none", lambda x: [x])
TTA.register("hflip", lambda x: [x, x.flip(3)])  # the mirror image: width is the last axis


#: At this shrink factor and beyond INTER_AREA (box averaging); below it INTER_LINEAR. Measured on
#: 384x512 JPEGs cropped to 320x256 (docs/speed.md): at 224x224 (1.4x) bilinear is 0.23 grey
#: levels from area averaging and 6x faster; at 64x48 (5x) it is 1.8 levels off (aliasing).
_AREA_FROM = 2.0


class _FitResize(A.ImageOnlyTransform):
    """Resize to (height, width): bilinear for shrinking less than :data:`_AREA_FROM` times (and
    for enlarging), area averaging from there on."""

    def __init__(self, height: int, width: int, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.height, self.width = int(height), int(width)

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        h, w = img.shape[:2]
        if (h, w) == (self.height, self.width):
            return img
        shrink = max(h / self.height, w / self.width)
        interp = cv2.INTER_AREA if shrink >= _AREA_FROM else cv2.INTER_LINEAR
        return cv2.resize(img, (self.width, self.height), interpolation=interp)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("height", "width")


@PRESETS.register("base")
def _base(cfg: Any) -> list[A.BasicTransform]:
    return []


@PRESETS.register("strong")
def _strong(cfg: Any) -> list[A.BasicTransform]:
    return [
        A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.03, p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.3),
        A.Affine(
            scale=(0.9, 1.1),
            translate_percent=(-0.06, 0.06),
            rotate=(-10, 10),
            border_mode=0,
            p=0.5,
        ),
        A.CoarseDropout(
            num_holes_range=(1, 4),
            hole_height_range=(0.05, 0.15),
            hole_width_range=(0.05, 0.15),
            p=0.3,
        ),
    ]


def _prepare_steps(cfg: Any) -> list[A.BasicTransform]:
    height, width = cfg.image_size
    return [FractionCenterCrop(cfg.crop), _FitResize(height, width)]


def _finish_steps() -> list[A.BasicTransform]:
    return [A.Normalize(mean=MEAN, std=STD, max_pixel_value=255.0), ToTensorV2()]


_OWNED = (A.Normalize, ToTensorV2, A.Resize, A.CenterCrop, _FitResize)


def _check_augment(augs: list[A.BasicTransform]) -> None:
    """Reject steps kit adds itself: a second resize or normalisation would split train/eval."""
    stack = list(augs)
    while stack:
        t = stack.pop()
        stack.extend(getattr(t, "transforms", []))
        if isinstance(t, _OWNED):
            raise ValueError(
                f"the training transform contains {type(t).__name__}; pass augmentations only: "
                f"kit crops and resizes (cfg.crop, cfg.image_size) before them and normalises "
                f"and converts to a tensor after them, for training and inference alike"
            )


def prepare(image: np.ndarray, cfg: Any) -> np.ndarray:
    """The deterministic geometry of ``cfg`` applied to one uint8 RGB image (H, W, 3)."""
    return _prepare_compose(tuple(cfg.crop), tuple(cfg.image_size))(image=image)["image"]


@functools.lru_cache(maxsize=16)
def _prepare_compose(crop: tuple[float, float], size: tuple[int, int]) -> A.Compose:
    # Building a Compose costs about 0.6 ms, as much as resizing: once per geometry, not per
    # picture. Its steps hold no random state, so threads may share it.
    return A.Compose([FractionCenterCrop(crop), _FitResize(*size)])


def build_transforms(
    cfg: Any,
    augment: A.BasicTransform | list[A.BasicTransform] | None = None,
    prepared: bool = False,
) -> tuple[A.Compose, A.Compose]:
    """``(train_tf, eval_tf)`` for ``cfg``; each maps ``image=uint8 RGB`` to a (3, H, W) tensor.

    ``augment`` replaces the preset's augmentations (a recipe's own ``A.Compose`` or list); it
    sees the cropped, resized uint8 image. ``prepared=True`` drops the crop and resize.
    """
    preset = PRESETS.get(cfg.preset)
    head = [] if prepared else _prepare_steps(cfg)
    if augment is None:
        augs = preset(cfg)
    else:
        augs = list(augment) if isinstance(augment, (list, tuple)) else [augment]
        _check_augment(augs)
    train_tf = A.Compose([*head, *augs, *_finish_steps()], seed=cfg.seed)
    eval_tf = A.Compose([*head, *_finish_steps()], seed=cfg.seed)
    return train_tf, eval_tf
