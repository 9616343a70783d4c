"""albumentations pipelines: one config gives the training and the evaluation transform.

Every pipeline is ``prepare`` (the crop of ``cfg.crop_mode``, then a resize to
``cfg.image_size``), the preset's augmentations (training only), then normalisation with the
statistics of the weights (:func:`normalization`) to a CHW float tensor (or on the device for
kit's loaders, ``tensor=False``): inference crops, resizes and normalises exactly like training.
A loader of prepared pictures (a cache, or the face crop, which needs each picture's face box)
pairs with ``build_transforms(cfg, prepared=True)``, which leaves out the crop and resize.

Crop modes (:data:`CROP_MODES`, ``--crop-mode``): ``center`` keeps the centre share ``cfg.crop``;
``face`` the region around the face box (``--face-margin`` on each side, at the network input's
aspect ratio), or a centre crop of that aspect ratio where no face was found. A team adds one
with ``CROP_MODES.register(name, CropMode(rect, needs_boxes))``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import albumentations as A
import cv2
import numpy as np
from albumentations.pytorch import ToTensorV2

from kit._config_checks import registered_model, torchvision_name, torchvision_weights
from kit.config import Config
from kit.models import pretrained_cfg, weights_name
from kit.registry import Registry

__all__ = [
    "CROP_MODES",
    "MEAN",
    "OTHER_CROP",
    "PRESETS",
    "STD",
    "Box",
    "CropMode",
    "FractionCenterCrop",
    "Normalization",
    "build_transforms",
    "create_transforms",
    "crop_rect",
    "draws_numbers",
    "normalization",
    "prepare",
    "prepare_key",
]

#: Pixel statistics of the competition's training photos (RGB, 0..1 scale).
MEAN: tuple[float, float, float] = (0.548, 0.504, 0.479)
STD: tuple[float, float, float] = (0.237, 0.247, 0.246)
#: timm's interpolation names -> OpenCV's (used when a crop is enlarged to the input size).
_INTERPOLATIONS = {
    "nearest": cv2.INTER_NEAREST,
    "bilinear": cv2.INTER_LINEAR,
    "bicubic": cv2.INTER_CUBIC,
    "lanczos": cv2.INTER_LANCZOS4,
}


#: A face box or crop rectangle in pixels: (x0, y0, x1, y1), x1 and y1 excluded.
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class CropMode:
    """``rect(height, width, box, crop=, image_size=, face_margin=)``: the crop of a picture with
    face ``box`` (None: none found / not needed); ``needs_boxes``: the mode uses face boxes."""

    rect: Callable[..., Box]
    needs_boxes: bool


#: crop mode name -> :class:`CropMode` (``--crop-mode``).
CROP_MODES: Registry[CropMode] = Registry("crop_mode")


def _center_rect(
    height: int, width: int, box: Box | None, *, crop: tuple[float, float], **_: Any
) -> Box:
    ch = max(1, round(height * crop[0]))
    cw = max(1, round(width * crop[1]))
    top, left = (height - ch) // 2, (width - cw) // 2
    return left, top, left + cw, top + ch


def _span(center: float, size: float, limit: int) -> tuple[int, int]:
    """``size`` pixels around ``center``, moved (then cut) to fit in ``0..limit``."""
    size = min(max(1, round(size)), limit)
    start = min(max(0, round(center - size / 2)), limit - size)
    return start, start + size


def _face_rect(
    height: int,
    width: int,
    box: Box | None,
    *,
    crop: tuple[float, float],
    image_size: tuple[int, int],
    face_margin: float,
) -> Box:
    """The face box grown by ``face_margin`` on each side, then to the input's aspect ratio (the
    resize must not stretch the face); without a face, the centre crop trimmed to it."""
    aspect = image_size[0] / image_size[1]  # height / width of the network input
    if box is None:
        x0, y0, x1, y1 = _center_rect(height, width, None, crop=crop)
        h, w = y1 - y0, x1 - x0
        h, w = min(h, w * aspect), min(w, h / aspect)
    else:
        x0, y0, x1, y1 = box
        grow = 1 + 2 * face_margin
        h, w = (y1 - y0) * grow, (x1 - x0) * grow
        h, w = max(h, w * aspect), max(w, h / aspect)
    left, right = _span((x0 + x1) / 2, w, width)
    top, bottom = _span((y0 + y1) / 2, h, height)
    return left, top, right, bottom


CROP_MODES.register("center", CropMode(_center_rect, needs_boxes=False))
CROP_MODES.register("face", CropMode(_face_rect, needs_boxes=True))

#: The crop ``--crop-mix`` shows besides a run's own, by the run's ``crop_mode``.
OTHER_CROP: dict[str, str] = {"center": "face", "face": "center"}


def crop_rect(
    shape: tuple[int, ...],
    box: Box | None = None,
    *,
    crop_mode: str,
    crop: tuple[float, float],
    image_size: tuple[int, int],
    face_margin: float = 0.0,
) -> Box:
    """The crop ``crop_mode`` (:data:`CROP_MODES`) takes of a picture of ``shape`` (H, W, ...)
    with face ``box``."""
    rect = CROP_MODES.use(crop_mode).rect
    kwargs = {"crop": crop, "image_size": image_size, "face_margin": face_margin}
    return rect(int(shape[0]), int(shape[1]), box, **kwargs)


@dataclass(frozen=True)
class Normalization:
    """Pixel statistics and resize interpolation of a run; ``source``: ``competition``, or the
    name of the pretrained weights."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str
    source: str


def normalization(cfg: Config) -> Normalization:
    """A pretrained model's own mean / std / interpolation (timm's pretrained config,
    torchvision's ``weights.transforms()``, or what ``kit.register_model`` was told); the
    competition's statistics for a model trained from scratch."""
    if not (cfg.pretrained or cfg.pretrained_file):
        return Normalization(MEAN, STD, "bilinear", "competition")
    if torchvision_name(cfg.model) is not None:
        found = torchvision_weights(cfg.model, cfg.pretrained_tag)
        preset = found.transforms()
        mean, std, source = preset.mean, preset.std, f"{cfg.model}.{found.name}"
        interpolation = getattr(preset.interpolation, "value", "bilinear")
    elif (spec := registered_model(cfg.model)) is not None:
        if spec.mean is None or spec.std is None:
            raise ValueError(
                f"model {cfg.model!r} starts from pretrained weights, but was registered "
                f"without their mean and std; register it with kit.register_model("
                f"{cfg.model!r}, mean=(...), std=(...)) as its weights were trained"
            )
        mean, std, interpolation, source = spec.mean, spec.std, "bilinear", cfg.model
    else:
        pc = pretrained_cfg(cfg.model, cfg.pretrained_tag)
        mean, std, interpolation = pc.mean, pc.std, pc.interpolation
        source = weights_name(cfg.model, cfg.pretrained_tag)
    if interpolation not in _INTERPOLATIONS:
        interpolation = "bilinear"
    mean, std = tuple(map(float, mean)), tuple(map(float, std))
    return Normalization(mean, std, interpolation, source)  # type: ignore[arg-type]


class FractionCenterCrop(A.ImageOnlyTransform):
    """Centre crop keeping ``fraction`` = (height, width) shares of the picture."""

    def __init__(self, fraction: tuple[float, float] = (1.0, 1.0), p: float = 1.0) -> None:
        super().__init__(p=p)
        self.fraction = tuple(float(f) for f in fraction)

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        x0, y0, x1, y1 = _center_rect(*img.shape[:2], None, crop=self.fraction)
        return np.ascontiguousarray(img[y0:y1, x0:x1])

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("fraction",)


#: preset name -> augmentations applied to the prepared (cropped, resized) uint8 image.
PRESETS: Registry[Callable[[Any], list[A.BasicTransform]]] = Registry("preset")


@PRESETS.register("base")
def _base(cfg: Config) -> list[A.BasicTransform]:
    return []


@PRESETS.register("strong")
def _strong(cfg: Config) -> list[A.BasicTransform]:
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


#: From this shrink factor INTER_AREA (box averaging), below it INTER_LINEAR: at a 1.4x shrink
#: bilinear is 0.23 grey levels from area averaging and 6x faster; at 5x, 1.8 levels off
#: (aliasing). Measured in docs/speed.md.
_AREA_FROM = 2.0


class _FitResize(A.ImageOnlyTransform):
    """Resize to (height, width): bilinear when shrinking less than :data:`_AREA_FROM` times,
    area averaging from there on, ``enlarge`` (an OpenCV flag) when enlarging."""

    def __init__(self, height: int, width: int, enlarge: int = cv2.INTER_LINEAR) -> None:
        super().__init__(p=1.0)
        self.height, self.width, self.enlarge = int(height), int(width), int(enlarge)

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        h, w = img.shape[:2]
        if (h, w) == (self.height, self.width):
            return img
        shrink = min(h / self.height, w / self.width)  # < 1: some side is enlarged
        if shrink < 1:
            flag = self.enlarge
        else:
            shrink = max(h / self.height, w / self.width)
            flag = cv2.INTER_AREA if shrink >= _AREA_FROM else cv2.INTER_LINEAR
        return cv2.resize(img, (self.width, self.height), interpolation=flag)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("height", "width", "enlarge")


@functools.lru_cache(maxsize=32)
def _resize_step(height: int, width: int, interpolation: str) -> _FitResize:
    """The resize to (height, width), enlarging with the weights' ``interpolation``. Built once
    per geometry, not per picture (building it costs about as much as the resize itself); it
    holds no random state, so threads may share it."""
    return _FitResize(height, width, _INTERPOLATIONS[interpolation])


_OWNED = (A.Normalize, ToTensorV2, A.Resize, A.CenterCrop, _FitResize)


def draws_numbers(transform: Any) -> bool:
    """Whether ``transform`` may draw random numbers: all but None and kit's own fixed steps."""
    if transform is None or isinstance(transform, (*_OWNED, FractionCenterCrop)):
        return False
    steps = getattr(transform, "transforms", None)
    return steps is None or any(draws_numbers(t) for t in steps)


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


def prepare(image: np.ndarray, cfg: Config, box: Box | None = None) -> np.ndarray:
    """The crop of ``cfg.crop_mode`` (around face ``box``) of a uint8 RGB image (H, W, 3),
    resized to ``cfg.image_size``: training, the cache and inference all use this one."""
    x0, y0, x1, y1 = crop_rect(
        image.shape,
        box,
        crop_mode=cfg.crop_mode,
        crop=cfg.crop,
        image_size=cfg.image_size,
        face_margin=cfg.face_margin,
    )
    crop = np.ascontiguousarray(image[y0:y1, x0:x1])
    resize = _resize_step(*cfg.image_size, normalization(cfg).interpolation)
    return resize(image=crop)["image"]


def prepare_key(cfg: Config) -> dict[str, Any]:
    """Every setting :func:`prepare` depends on, as JSON values (the cache key; the face boxes
    key it through the caller)."""
    key: dict[str, Any] = {"mode": cfg.crop_mode, "crop": list(cfg.crop)}
    if CROP_MODES.get(cfg.crop_mode).needs_boxes:
        key["margin"] = cfg.face_margin
        key["detector"] = cfg.face_detector
    return {**key, "interpolation": normalization(cfg).interpolation}


def _own_augmentations(
    augment: A.BasicTransform | Sequence[A.BasicTransform] | None,
) -> list[A.BasicTransform]:
    augs = [] if augment is None else augment
    augs = list(augs) if isinstance(augs, (list, tuple)) else [augs]
    _check_augment(augs)
    return augs


def _prepare_steps(
    crop_mode: str, crop: tuple[float, float], image_size: tuple[int, int], interpolation: str
) -> list[A.BasicTransform]:
    """The crop and resize of whole pictures, which are cropped without their face box."""
    if CROP_MODES.get(crop_mode).needs_boxes:
        raise ValueError(
            f"crop_mode {crop_mode!r} needs each picture's face box: read pictures with "
            f"kit.faces.prepared_loader(cfg, paths) and pass prepared=True"
        )
    return [FractionCenterCrop(crop), _resize_step(*image_size, interpolation)]


def _pipelines(
    head: list[A.BasicTransform],
    augs: list[A.BasicTransform],
    norm: tuple[tuple[float, ...], tuple[float, ...]] | None,
    seed: int | None,
) -> tuple[A.Compose, A.Compose]:
    """``(train_tf, eval_tf)``: ``head``, ``augs`` (training only), then the normalisation by
    ``norm`` = (mean, std) to a tensor (None: none)."""
    tail = []
    if norm is not None:
        tail = [A.Normalize(mean=norm[0], std=norm[1], max_pixel_value=255.0), ToTensorV2()]
    return A.Compose([*head, *augs, *tail], seed=seed), A.Compose([*head, *tail], seed=seed)


def create_transforms(
    *,
    image_size: tuple[int, int],
    crop: tuple[float, float] = (1.0, 1.0),
    crop_mode: str = "center",
    mean: tuple[float, ...] = MEAN,
    std: tuple[float, ...] = STD,
    interpolation: str = "bilinear",
    augment: A.BasicTransform | Sequence[A.BasicTransform] | None = None,
    prepared: bool = False,
    tensor: bool = True,
    seed: int | None = None,
) -> tuple[A.Compose, A.Compose]:
    """``(train_tf, eval_tf)`` from explicit settings, as timm's ``create_transform``: the
    centre share ``crop`` resized to ``image_size`` (``interpolation`` when enlarging; none with
    ``prepared=True``), ``augment`` (training only), then normalisation with ``mean`` and
    ``std`` to a (3, H, W) float tensor (``tensor=False``: none). ``seed`` seeds the draws."""
    head = [] if prepared else _prepare_steps(crop_mode, crop, image_size, interpolation)
    augs = _own_augmentations(augment)
    return _pipelines(head, augs, (mean, std) if tensor else None, seed)


def build_transforms(
    cfg: Config,
    augment: A.BasicTransform | list[A.BasicTransform] | None = None,
    prepared: bool = False,
    tensor: bool = True,
) -> tuple[A.Compose, A.Compose]:
    """:func:`create_transforms` of ``cfg`` (its preset, crop, size and the normalisation of its
    weights). With ``tensor=False`` the uint8 picture is left for kit's loaders to normalise
    on the device (:func:`kit.batch.to_model_input`), to the same tensor. ``augment`` replaces
    the preset's augmentations; it sees the cropped, resized uint8 image.
    """
    preset = PRESETS.get(cfg.preset)
    head = []
    if not prepared:
        interpolation = normalization(cfg).interpolation
        head = _prepare_steps(cfg.crop_mode, cfg.crop, cfg.image_size, interpolation)
    if augment is None:
        with PRESETS.calling(cfg.preset, on=f"the config of run {cfg.name!r}"):
            augs = preset(cfg)  # a preset's own steps are its author's: not checked
            if not isinstance(augs, (list, tuple)):
                raise TypeError(f"returned {type(augs).__name__}; expected a list of transforms")
    else:
        augs = _own_augmentations(augment)
    norm = normalization(cfg) if tensor else None
    return _pipelines(head, augs, None if norm is None else (norm.mean, norm.std), cfg.seed)
