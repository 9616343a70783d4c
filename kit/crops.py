"""Crop modes: which rectangle of a picture the network sees (``--crop-mode``).

``center`` keeps the centre share ``cfg.crop`` of every picture; ``face`` the region around the
picture's face box (``--face-margin`` on each side, at the network input's aspect ratio), or a
centre crop of that aspect ratio where no face was found. A team adds a mode with
``CROP_MODES.register(name, CropMode(rect, needs_boxes))``; :func:`kit.transforms.prepare`
applies it, in training and inference alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kit.registry import Registry

__all__ = ["CROP_MODES", "OTHER_CROP", "Box", "CropMode", "crop_rect"]

#: A face box or crop rectangle in pixels: (x0, y0, x1, y1), x1 and y1 excluded.
Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class CropMode:
    """``rect(height, width, box, cfg)``: the crop of a (height, width) picture whose face box
    is ``box`` (None: none found / not needed). ``needs_boxes``: the mode uses face boxes."""

    rect: Callable[[int, int, Box | None, Any], Box]
    needs_boxes: bool


#: crop mode name -> :class:`CropMode` (``--crop-mode``).
CROP_MODES: Registry[CropMode] = Registry("crop_mode")


def _center_rect(height: int, width: int, box: Box | None, cfg: Any) -> Box:
    ch = max(1, round(height * cfg.crop[0]))
    cw = max(1, round(width * cfg.crop[1]))
    top, left = (height - ch) // 2, (width - cw) // 2
    return left, top, left + cw, top + ch


def _span(center: float, size: float, limit: int) -> tuple[int, int]:
    """``size`` pixels around ``center``, moved (then cut) to fit in ``0..limit``."""
    size = min(max(1, round(size)), limit)
    start = min(max(0, round(center - size / 2)), limit - size)
    return start, start + size


def _face_rect(height: int, width: int, box: Box | None, cfg: Any) -> Box:
    """The face box grown by ``cfg.face_margin`` on each side, then to the input's aspect
    ratio (so the resize does not stretch the face); where no face was found, the centre crop
    ``cfg.crop``, trimmed to that aspect ratio too."""
    aspect = cfg.image_size[0] / cfg.image_size[1]  # height / width of the network input
    if box is None:
        x0, y0, x1, y1 = _center_rect(height, width, None, cfg)
        h, w = y1 - y0, x1 - x0
        h, w = min(h, w * aspect), min(w, h / aspect)
    else:
        x0, y0, x1, y1 = box
        grow = 1 + 2 * cfg.face_margin
        h, w = (y1 - y0) * grow, (x1 - x0) * grow
        h, w = max(h, w * aspect), max(w, h / aspect)
    left, right = _span((x0 + x1) / 2, w, width)
    top, bottom = _span((y0 + y1) / 2, h, height)
    return left, top, right, bottom


CROP_MODES.register("center", CropMode(_center_rect, needs_boxes=False))
CROP_MODES.register("face", CropMode(_face_rect, needs_boxes=True))

#: The crop ``--crop-mix`` shows besides a run's own, by the run's ``crop_mode``.
OTHER_CROP: dict[str, str] = {"center": "face", "face": "center"}


def crop_rect(shape: tuple[int, ...], cfg: Any, box: Box | None = None) -> Box:
    """The crop ``cfg.crop_mode`` takes of a picture of ``shape`` (H, W, ...) with face ``box``."""
    return CROP_MODES.use(cfg.crop_mode).rect(int(shape[0]), int(shape[1]), box, cfg)
