"""Real photographs with hand-checked face regions, to check a face detector beside the fixture.

The fixture's faces are drawn; these are photographed, and ship inside the scikit-image wheel
(no download): ``astronaut`` (Eileen Collins, frontal), ``camera`` (the cameraman, three-quarter
profile, grey), the faces of ``lfw_subset`` (Labeled Faces in the Wild, 25x25 grey crops, each
enlarged and set in a portrait-shaped picture), and as pictures without a face ``coffee``,
``chelsea`` (a cat), ``rocket`` and the non-face patches of ``lfw_subset``. The face regions
were drawn by hand on the saved pictures and checked by eye; a detector's box is right when
its IoU with the region is at least 0.5, as on the fixture (docs/faces.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kit.io import atomic_path
from kit.transforms import Box

__all__ = ["LFW_FACE", "Photo", "iou", "photos", "write_photos"]

#: Where an ``lfw_subset`` face lies in its picture (it is the whole 25x25 crop, enlarged 6x).
LFW_FACE: Box = (45, 60, 195, 210)
_LFW_FACES = 100  # lfw_subset: 100 faces, then 100 patches without one

#: Hand-checked face regions (x0, y0, x1, y1) of the whole photographs; None: no face.
_REGIONS: dict[str, Box | None] = {
    "astronaut": (175, 60, 270, 175),
    "camera": (185, 110, 258, 198),
    "coffee": None,
    "chelsea": None,
    "rocket": None,
}


@dataclass(frozen=True)
class Photo:
    """A photograph (uint8 RGB) and its face region (None: no face in it)."""

    name: str
    image: np.ndarray
    face: Box | None


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes ``(x0, y0, x1, y1)``."""
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def _lfw_picture(crop: np.ndarray) -> np.ndarray:
    """A 25x25 LFW crop (floats 0-1) enlarged to 150x150 and padded to 310x240 with its own
    edges: alone, the tight crop leaves a detector no head around the face."""
    from PIL import Image

    face = Image.fromarray(np.round(crop * 255).astype(np.uint8)).resize((150, 150), Image.BICUBIC)
    x0, y0, x1, y1 = LFW_FACE
    padded = np.pad(np.asarray(face), ((y0, 310 - y1), (x0, 240 - x1)), mode="edge")
    return _rgb(padded)


def photos(lfw_step: int = 1) -> list[Photo]:
    """The photographs with their face regions; every ``lfw_step``-th LFW face and non-face."""
    from skimage import data

    out = [Photo(name, _rgb(getattr(data, name)()), face) for name, face in _REGIONS.items()]
    lfw = data.lfw_subset()
    for i in range(0, len(lfw), lfw_step):
        face = LFW_FACE if i < _LFW_FACES else None
        kind = "face" if face is not None else "nonface"
        out.append(Photo(f"lfw_{kind}{i:03d}", _lfw_picture(lfw[i]), face))
    return out


def write_photos(folder: str | os.PathLike[str], lfw_step: int = 1) -> dict[str, Photo]:
    """Save :func:`photos` as PNG files in ``folder``: ``path -> Photo``."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for photo in photos(lfw_step):
        path = folder / f"{photo.name}.png"
        with atomic_path(path) as tmp:
            Image.fromarray(photo.image).save(tmp, format="PNG")
        out[str(path)] = photo
    return out
