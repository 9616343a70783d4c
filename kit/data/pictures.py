"""Pictures as a run reads them: each file decoded, cropped (around its face box in face mode)
and resized once by :class:`PreparedLoader` (:func:`prepare_file` without face boxes), and the
run's cache of them (:func:`build_run_cache`), keyed by everything their pixels depend on.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from kit.config import Config
from kit.data._common import usable_cores
from kit.data.image_cache import ImageCache, build_cache
from kit.data.layout import load_rgb
from kit.runfolder import package_version
from kit.transforms import CROP_MODES, Box, prepare, prepare_key

__all__ = [
    "LOADER_VERSION",
    "FaceBoxes",
    "PreparedLoader",
    "build_run_cache",
    "cache_extra",
    "prepare_file",
]

#: Bumped when :func:`prepare_file` changes its output, so that old caches are not reused.
#: 4: EXIF orientation, 16-bit and transparency decoded as a viewer shows them;
#: 3: bilinear below a 2x shrink, area averaging from 2x (kit.transforms._FitResize).
LOADER_VERSION = 4
#: Packages whose code computes the cached pixels (decode: pillow; crop, resize: the rest).
_PIXEL_PACKAGES = (
    "pillow",
    "albumentations",
    "albucore",
    "opencv-python-headless",
    "opencv-python",
)
#: The loader's name in the key: where prepare_file lived when caches were first keyed by it;
#: kept on a move so that existing caches stay valid (only LOADER_VERSION invalidates them).
_LOADER_NAME = "kit.train.setup.prepare_file"


def prepare_file(path: str, cfg: Any, box: Box | None = None) -> np.ndarray:
    """One picture decoded, cropped (around face ``box``) and resized as ``cfg`` says."""
    return prepare(load_rgb(path), cfg, box)


def cache_extra() -> dict[str, Any]:
    """The cache key's loader version and versions of the packages that decode and resize."""
    versions = {p: v for p in _PIXEL_PACKAGES if (v := package_version(p)) is not None}
    return {"loader": _LOADER_NAME, "version": LOADER_VERSION, **versions}


def build_run_cache(
    cfg: Any,
    paths: list[str],
    folder: str | os.PathLike[str],
    progress: bool = True,
    loader: Callable[[str], np.ndarray] | None = None,
) -> ImageCache:
    """Build (or reuse) the cache in ``folder`` of ``paths`` prepared under ``cfg`` by
    ``loader`` (a :class:`PreparedLoader`, which holds a face crop's boxes), on every core."""
    extra = cache_extra()
    faces = getattr(loader, "faces", None)
    if faces is not None:
        extra["faces"] = faces.file.name  # the boxes file's name carries its key
    return build_cache(
        paths,
        loader or partial(prepare_file, cfg=cfg),
        size=tuple(cfg.image_size),
        crop=prepare_key(cfg),
        cache_dir=folder,
        extra=extra,
        workers=usable_cores(),
        progress=progress,
        flips=cfg.cache_flips,
    )


@dataclass(frozen=True)
class FaceBoxes:
    """``path -> box`` (None: no face, the crop falls back to the centre) and where stored;
    ``scores``: ``path -> confidence`` of the faces found, where the detector gives one."""

    boxes: dict[str, Box | None]
    file: Path
    detector: str
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def found(self) -> int:
        return sum(b is not None for b in self.boxes.values())

    @property
    def fallback(self) -> int:
        return len(self.boxes) - self.found

    @property
    def min_score(self) -> float | None:
        return min(self.scores.values()) if self.scores else None

    def summary(self) -> str:
        share = self.fallback / max(1, len(self.boxes))
        lowest = "" if self.min_score is None else f" (lowest confidence {self.min_score:.2f})"
        return (
            f"face boxes ({self.detector}): {self.found} found{lowest}, {self.fallback} "
            f"centre-crop fallback ({share:.0%}) of {len(self.boxes)} pictures; stored in "
            f"{self.file}"
        )

    def record(self) -> dict[str, Any]:
        """What env.json keeps of them."""
        return {
            "detector": self.detector,
            "found": self.found,
            "fallback": self.fallback,
            "min_score": self.min_score,
            "file": str(self.file),
        }


class PreparedLoader:
    """``loader(path)``: the picture decoded and prepared by :func:`kit.transforms.prepare`
    (around its face box); pairs with ``prepared=True``. Picklable, for workers."""

    def __init__(self, cfg: Config, boxes: FaceBoxes | None = None) -> None:
        if boxes is None and CROP_MODES.get(cfg.crop_mode).needs_boxes:
            raise ValueError(f"crop_mode {cfg.crop_mode!r} needs face boxes (kit.faces.face_boxes)")
        self.cfg = cfg
        self.faces = boxes
        self.boxes = {} if boxes is None else boxes.boxes

    @property
    def summary(self) -> str:
        return "no face boxes (centre crop)" if self.faces is None else self.faces.summary()

    def box(self, path: str) -> Box | None:
        return self.boxes.get(os.fspath(path))

    def __call__(self, path: str) -> np.ndarray:
        return prepare(load_rgb(path), self.cfg, self.box(path))
