"""Where a run's pictures come from: the preprocessed cache (``cfg.cache``) or the files.

With the cache on, ``fit`` decodes, crops (centre or face, ``cfg.crop_mode``) and resizes every
picture of the data set (training, validation and eval rows) once, with
:class:`kit.faces.PreparedLoader` (the one prepare step of training and inference), into a
memory-mapped uint8 cache (:mod:`kit.data.cache`). The datasets then read it and use
``build_transforms(cfg, prepared=True)``; random augmentations still run on every sample.
Pixels are identical either way. The face crop without the cache reads pictures through the
same loader (it needs each picture's face box, which the transforms do not see).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from kit.data import dataset as _dataset
from kit.data.cache import ImageCache, build_cache, cache_dir_for
from kit.faces import FaceBoxes, PreparedLoader, prepared_loader
from kit.runfolder import package_version
from kit.train.distributed import SINGLE, DistContext, barrier
from kit.train.loaders import usable_cores
from kit.transforms import CROP_MODES, Box, prepare, prepare_key

__all__ = [
    "LOADER_VERSION",
    "FlipChoice",
    "RunPictures",
    "build_run_cache",
    "cache_extra",
    "cache_folder",
    "prepare_file",
    "run_paths",
]

#: Bumped when :func:`prepare_file` changes its output, so that old caches are not reused.
LOADER_VERSION = 2
#: Packages whose code computes the cached pixels (decode: pillow; crop, resize: the rest).
_PIXEL_PACKAGES = (
    "pillow",
    "albumentations",
    "albucore",
    "opencv-python-headless",
    "opencv-python",
)


def prepare_file(path: str, cfg: Any, box: Box | None = None) -> np.ndarray:
    """One picture decoded, cropped (around face ``box`` in face mode) and resized as ``cfg``
    says: uint8 (H, W, 3)."""
    return prepare(_dataset.load_rgb(path), cfg, box)


def cache_extra() -> dict[str, Any]:
    """What else the cached pixels depend on (part of the cache key): the loader's version and
    the versions of the packages that decode and resize."""
    versions = {p: v for p in _PIXEL_PACKAGES if (v := package_version(p)) is not None}
    return {"loader": "kit.train.pipeline.prepare_file", "version": LOADER_VERSION, **versions}


class FlipChoice:
    """A loader over a cache built with flips: the stored picture or its stored mirror image,
    with even odds; seeded per sample by ``kit.train.sampling.SeededDataset``."""

    def __init__(self, cache: ImageCache) -> None:
        self.cache = cache
        self._rng = np.random.default_rng(0)

    def set_random_seed(self, seed: int) -> None:
        """Seed the next choices."""
        self._rng = np.random.default_rng(seed)

    def __call__(self, path: str) -> np.ndarray:
        i = self.cache.index_of(path)
        return self.cache.flipped(i) if self._rng.random() < 0.5 else self.cache[i]


@dataclass
class RunPictures:
    """The picture loaders of one run. ``cache`` None: every picture is decoded from its file
    (``train`` is ``load_rgb``, ``eval`` None); else both read the cache (prepared pictures)."""

    train: Any
    eval: Any
    cache: ImageCache | None
    faces: FaceBoxes | None = None  # the face boxes of a face crop

    @property
    def prepared(self) -> bool:
        """Whether the loaders return cropped, resized pictures (for ``prepared=True``)."""
        return self.cache is not None or isinstance(self.train, PreparedLoader)

    @classmethod
    def from_files(cls) -> RunPictures:
        """Decode every picture from its file, every time."""
        return cls(_dataset.load_rgb, None, None)

    @classmethod
    def for_run(
        cls, cfg: Any, data: Any, ctx: DistContext = SINGLE, progress: bool = True
    ) -> RunPictures:
        """The pictures of ``data`` (``kit.train.loaders.Splits``) as ``cfg.cache`` says; with
        several processes, rank 0 builds the cache while the others wait, then they reuse it."""
        faces = CROP_MODES.get(cfg.crop_mode).needs_boxes
        if not cfg.cache and not faces:
            return cls.from_files()
        paths, folder = run_paths(data), cache_folder(cfg, data.data_dir)

        def build(progress: bool) -> tuple[PreparedLoader, ImageCache | None]:
            cores = usable_cores()
            loader = prepared_loader(cfg, data.data_dir, paths, workers=cores, progress=progress)
            if not cfg.cache:
                return loader, None
            return loader, build_run_cache(cfg, paths, folder, progress=progress, loader=loader)

        if ctx.is_main:
            loader, cache = build(progress)
        barrier(ctx)
        if not ctx.is_main:
            loader, cache = build(False)
        if cache is None:
            return cls(loader, loader, None, loader.faces)
        return cls(FlipChoice(cache) if cfg.cache_flips else cache, cache, cache, loader.faces)


def cache_folder(cfg: Any, data_dir: str | os.PathLike[str]) -> Path:
    """``cfg.cache_dir``, or ``<data_dir>/cache``."""
    return cache_dir_for(cfg, data_dir)


def run_paths(data: Any) -> list[str]:
    """Every picture of ``data`` (``Splits``: training, validation and eval rows), sorted."""
    frames = [data.train, data.val] + ([data.eval] if data.eval is not None else [])
    # sorted, not split order: every fold and seed of one data set shares one cache
    return sorted({str(p) for df in frames for p in df["path"]})


def build_run_cache(
    cfg: Any,
    paths: list[str],
    folder: str | os.PathLike[str],
    progress: bool = True,
    loader: PreparedLoader | None = None,
) -> ImageCache:
    """Build (or reuse) the cache in ``folder`` of ``paths`` prepared under ``cfg``'s crop and
    size (by ``loader``: it holds the face boxes of a face crop), decoding on every core."""
    extra = cache_extra()
    if loader is not None and loader.faces is not None:
        extra["faces"] = loader.faces.file.name  # the boxes file's name carries its key
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
