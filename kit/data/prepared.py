"""The pictures a run's cache holds: each file decoded, cropped and resized once by
:func:`prepare_file` (or a face crop's loader), keyed by everything their pixels depend on.

:func:`build_run_cache` builds (or reuses) the cache of a run's pictures under ``cfg``'s crop
and size; ``kit.train.data.RunPictures`` wires it into training and inference.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from kit.data.cache import ImageCache, build_cache
from kit.data.decode import load_rgb
from kit.data.sampling import usable_cores
from kit.runfolder import package_version
from kit.transforms import Box, prepare, prepare_key

__all__ = ["LOADER_VERSION", "build_run_cache", "cache_extra", "prepare_file"]

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
_LOADER_NAME = "kit.train.data.prepare_file"


def prepare_file(path: str, cfg: Any, box: Box | None = None) -> np.ndarray:
    """One picture decoded, cropped (around face ``box`` in face mode) and resized as ``cfg``
    says: uint8 (H, W, 3)."""
    return prepare(load_rgb(path), cfg, box)


def cache_extra() -> dict[str, Any]:
    """What else the cached pixels depend on (part of the cache key): the loader's version and
    the versions of the packages that decode and resize."""
    versions = {p: v for p in _PIXEL_PACKAGES if (v := package_version(p)) is not None}
    return {"loader": _LOADER_NAME, "version": LOADER_VERSION, **versions}


def build_run_cache(
    cfg: Any,
    paths: list[str],
    folder: str | os.PathLike[str],
    progress: bool = True,
    loader: Callable[[str], np.ndarray] | None = None,
) -> ImageCache:
    """Build (or reuse) the cache in ``folder`` of ``paths`` prepared under ``cfg``'s crop and
    size (by ``loader``, a ``kit.faces.PreparedLoader``: it holds the face boxes of a face
    crop), decoding on every core."""
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
