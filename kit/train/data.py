"""Where a run's pictures come from: the picture cache and the training dataset (the data
folder and its split are :mod:`kit.splits`, the loader of a frame to predict
:mod:`kit.train.forward`; batches are drawn by :mod:`kit.data.sampling`).

With ``cfg.cache`` on, every picture of the data set is decoded, cropped (centre or face,
``cfg.crop_mode``) and resized once by :class:`kit.data.pictures.PreparedLoader` (the one
prepare step of training and inference) into a memory-mapped cache (:mod:`kit.data.image_cache`);
the datasets then read it with ``build_transforms(cfg, prepared=True)``. Pixels are identical
either way.
The face crop without the cache reads pictures through the same loader (it needs each
picture's face box, which the transforms do not see), in training and in inference alike.
Both loaders ship uint8 pictures, normalised on the model's device by ``to_model_input``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import albumentations as A
import pandas as pd

from kit.config import Config
from kit.data.dataset import CropChoice, FlipChoice, ImageDataset, load_rgb
from kit.data.image_cache import ImageCache, cache_dir_for
from kit.data.pictures import (
    LOADER_VERSION,
    FaceBoxes,
    PreparedLoader,
    build_run_cache,
    cache_extra,
    prepare_file,
)
from kit.data.pseudo import soft_targets
from kit.data.sampling import usable_cores
from kit.faces import other_crop, prepared_loader
from kit.heads import head_soft_target
from kit.pretrained import Weights
from kit.splits import Splits, run_paths
from kit.train.distributed import SINGLE, DistContext, barrier
from kit.transforms import CROP_MODES, OTHER_CROP, build_transforms, normalization

__all__ = [
    "LOADER_VERSION",
    "RunPictures",
    "build_run_cache",
    "cache_extra",
    "inputs_record",
    "prepare_file",
    "train_dataset",
]


# ---- the picture cache ---------------------------------------------------------------------
@dataclass
class RunPictures:
    """The picture loaders of one run. ``cache`` None: every picture is decoded from its file
    (``train`` is ``load_rgb``, ``eval`` None), or prepared around its face by a
    :class:`PreparedLoader` (face crop); else both read the cache (prepared pictures). With
    ``--crop-mix``, ``train`` is a :class:`CropChoice` between the run's crop and the other
    (``other_cache`` holds the other crop's pictures when ``cache`` is on)."""

    train: Any
    eval: Any
    cache: ImageCache | None
    faces: FaceBoxes | None = None  # the face boxes of a face crop or a crop mix
    other_cache: ImageCache | None = None

    @property
    def prepared(self) -> bool:
        """Whether the loaders return cropped, resized pictures (for ``prepared=True``)."""
        return self.cache is not None or isinstance(self.train, (PreparedLoader, CropChoice))

    @classmethod
    def for_run(
        cls, cfg: Config, data: Splits, ctx: DistContext = SINGLE, progress: bool = True
    ) -> RunPictures:
        """The pictures of ``data`` as ``cfg.cache``, ``cfg.crop_mode`` and ``cfg.crop_mix``
        say; with several processes, rank 0 finds the face boxes and builds the caches (in
        ``cfg.cache_dir`` or ``<data_dir>/cache``) while the others wait, then they reuse them."""
        needs_boxes = CROP_MODES.get(cfg.crop_mode).needs_boxes
        if not cfg.cache and not needs_boxes and not cfg.crop_mix:
            return cls(load_rgb, None, None)
        paths, folder = run_paths(data), cache_dir_for(cfg.cache_dir, data.data_dir)

        def build(show: bool) -> RunPictures:
            cores = usable_cores()
            own = prepared_loader(cfg, data.data_dir, paths, workers=cores, progress=show)
            cache = build_run_cache(cfg, paths, folder, show, loader=own) if cfg.cache else None
            train, faces, other_cache = _training_reader(cfg, own, cache), own.faces, None
            if cfg.crop_mix:  # the other crop's pictures (a centre run's face boxes, found once)
                mode = OTHER_CROP[cfg.crop_mode]
                other, applies = other_crop(cfg, mode, data.data_dir, paths, cores, show, faces)
                if cfg.cache:
                    other_cache = build_run_cache(other.cfg, paths, folder, show, loader=other)
                other_train = _training_reader(cfg, other, other_cache)
                train = CropChoice(train, other_train, cfg.crop_mix, applies)
                faces = faces or other.faces
            return cls(train, cache or own, cache, faces, other_cache)

        if ctx.is_main:
            pictures = build(progress)
        barrier(ctx)
        return pictures if ctx.is_main else build(False)


def _training_reader(cfg: Config, loader: PreparedLoader, cache: ImageCache | None) -> Any:
    """What training reads a crop's pictures with: its cache (a stored mirror image or not,
    seeded, with ``cache_flips``), else its loader."""
    if cache is None:
        return loader
    return FlipChoice(cache) if cfg.cache_flips else cache


def inputs_record(cfg: Config, weights: Weights | None, faces: FaceBoxes | None) -> dict[str, Any]:
    """env.json's records of what a run's model starts from: the pretrained weights (source,
    hub id or file, sha256; None from scratch), the normalisation they imply, and the face
    boxes' found / fallback counts (face crop only)."""
    return {
        "weights": None if weights is None else weights.to_dict(),
        "normalization": dataclasses.asdict(normalization(cfg)),
        "faces": None if faces is None else faces.record(),
    }


# ---- datasets and loaders ------------------------------------------------------------------
def train_dataset(
    cfg: Config,
    df: pd.DataFrame,
    target: Callable[[int], Any],
    pictures: RunPictures,
    augment: A.BasicTransform | None = None,
) -> ImageDataset:
    """The training rows ``df`` with their ``target`` (the head's; with soft pseudo-labels
    among the rows, ``cfg.head``'s soft target) under ``cfg``'s training transform, as uint8
    pictures (``kit.batch.to_model_input`` normalises them on the device); ``augment``
    replaces the preset's augmentations."""
    train_tf, _ = build_transforms(cfg, augment=augment, prepared=pictures.prepared, tensor=False)
    soft = soft_targets(df)  # soft pseudo-labels: every row trains on the head's soft target
    target = target if soft is None else head_soft_target(cfg.head)
    return ImageDataset(df, train_tf, "label", cfg.age_thresholds, target, pictures.train, soft)
