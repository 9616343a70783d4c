"""Where a run's pictures come from: the data folder (or fixture), the split, the picture cache,
the training dataset and the loader of a frame to predict (batches are drawn by
:mod:`kit.data.sampling`).

With ``cfg.cache`` on, every picture of the data set is decoded, cropped (centre or face,
``cfg.crop_mode``) and resized once by :class:`kit.data.pictures.PreparedLoader` (the one
prepare step of training and inference) into a memory-mapped cache (:mod:`kit.data.cache`);
the datasets then read it with ``build_transforms(cfg, prepared=True)``. Pixels are identical
either way.
The face crop without the cache reads pictures through the same loader (it needs each
picture's face box, which the transforms do not see), in training and in inference alike.
Both loaders ship uint8 pictures, normalised on the model's device by ``to_model_input``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import pandas as pd
from torch.utils.data import DataLoader

from kit.data import read_eval, read_train, verify_images
from kit.data.cache import ImageCache, cache_dir_for
from kit.data.dataset import CropChoice, FlipChoice, ImageDataset, collate_pictures, load_rgb
from kit.data.fixture import FIXTURE, SMOKE_FIXTURE, make_fixture
from kit.data.pictures import (
    LOADER_VERSION,
    FaceBoxes,
    PreparedLoader,
    build_run_cache,
    cache_extra,
    prepare_file,
)
from kit.data.pseudo import PseudoLabels, load_pseudo_labels, soft_targets
from kit.data.sampling import resolve_workers, usable_cores
from kit.faces import other_crop, prepared_loader
from kit.heads import head_soft_target
from kit.pretrained import Weights
from kit.splits import holdout, person_folds
from kit.train.distributed import SINGLE, DistContext, barrier
from kit.transforms import CROP_MODES, OTHER_CROP, build_transforms, normalization

__all__ = [
    "LOADER_VERSION",
    "RunPictures",
    "Splits",
    "build_run_cache",
    "cache_extra",
    "frame_loader",
    "inputs_record",
    "load_splits",
    "person_folds_of",
    "prepare_file",
    "resolve_data_dir",
    "run_paths",
    "split_seed",
    "train_dataset",
]

_log = logging.getLogger("kit")
#: The eval set is never thinned (a submission needs every row), so its bad pictures have one fix.
_EVAL_FIX = (
    "replace them: a submission needs the picture of every row of eval/info.csv, so "
    "evaluation pictures are never dropped"
)


# ---- the data and its split -------------------------------------------------------------------
@dataclass
class Splits:
    """The frames of one run: training rows, validation rows, and the eval set if any."""

    data_dir: Path
    train: pd.DataFrame
    val: pd.DataFrame
    eval: pd.DataFrame | None
    fold: int  # fold id written to val_probs.csv; -1 for a holdout split
    pseudo: PseudoLabels | None = None  # eval rows trained on (cfg.pseudo_labels), never val

    @property
    def training(self) -> pd.DataFrame:
        """The rows training draws from: ``train``, plus the pseudo-labelled eval rows."""
        if self.pseudo is None:
            return self.train
        return pd.concat([self.train, self.pseudo.rows], ignore_index=True)


def resolve_data_dir(cfg: Any) -> Path:
    """``cfg.data_dir``, or the fixture (built once under ``data/``, relative to the cwd)."""
    if cfg.data_dir is not None:
        return Path(cfg.data_dir).expanduser()
    root, people, size = SMOKE_FIXTURE if cfg.smoke else FIXTURE
    if not (root / "train" / "train.csv").is_file():
        # built beside root and renamed into place, so parallel runs never see half of one
        _log.info("building the synthetic fixture in %s (%d people, first run only)", root, people)
        tmp = root.with_name(f".{root.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        make_fixture(tmp, n_people=people, image_size=size, seed=0)
        try:
            os.replace(tmp, root)
        except OSError:  # another process finished first, or an old partial folder is in the way
            shutil.rmtree(tmp, ignore_errors=True)
            if not (root / "train" / "train.csv").is_file():
                raise
    return root


def load_splits(cfg: Any) -> Splits:
    """Read the data of ``cfg`` and split it by person (holdout, or fold k of n)."""
    data_dir = resolve_data_dir(cfg)
    df = read_train(data_dir, fixes=cfg.fixes, strict=cfg.strict_data)
    if cfg.limit_people is not None:
        keep = df["person_id"].drop_duplicates().iloc[: cfg.limit_people]
        df = df[df["person_id"].isin(keep)].reset_index(drop=True)
    # A zero-byte or cut-short picture stops the run here, named, not in epoch 9 (~0.1 ms each).
    df = verify_images(df, strict=cfg.strict_data)
    if cfg.fold is None:
        is_val, fold = holdout(df, val_ratio=cfg.val_ratio, seed=split_seed(cfg)), -1
    else:
        is_val, fold = person_folds_of(df, cfg) == cfg.fold, cfg.fold
    train, val = df[~is_val].reset_index(drop=True), df[is_val].reset_index(drop=True)
    if len(train) == 0 or len(val) == 0:
        raise ValueError(
            f"the split left {len(train)} training and {len(val)} validation images "
            f"({df['person_id'].nunique()} people); use more people or another val_ratio"
        )
    has_eval = (data_dir / "eval" / "info.csv").is_file()
    if not has_eval and (data_dir / "eval").is_dir():
        _log.warning("%s has no info.csv: this run writes no submission", data_dir / "eval")
    # always strict: a submission needs every row of info.csv
    test = verify_images(read_eval(data_dir), fix=_EVAL_FIX) if has_eval else None
    # after the split: pseudo-labelled eval pictures can only ever be training rows
    pseudo = None
    if cfg.pseudo_labels:
        pseudo = load_pseudo_labels(
            test,
            data_dir,
            sources=cfg.pseudo_labels,
            threshold=cfg.pseudo_threshold,
            targets=cfg.pseudo_targets,
        )
    return Splits(data_dir, train, val, test, fold, pseudo)


def person_folds_of(df: pd.DataFrame, cfg: Any) -> np.ndarray:
    """Fold of every row of ``df`` under ``cfg.n_folds`` and :func:`split_seed`; too few people for
    the folds is refused naming the flag that fixes it."""
    people = df["person_id"].nunique()
    if people < cfg.n_folds:
        raise ValueError(
            f"{people} people cannot fill {cfg.n_folds} folds (config field 'n_folds'); "
            f"lower --n-folds to at most {people}, or use more people"
        )
    return person_folds(df, n_splits=cfg.n_folds, seed=split_seed(cfg))


def split_seed(cfg: Any) -> int:
    """The seed of ``cfg``'s split: ``split_seed``, else ``seed`` (repeats over seeds keep
    their validation people by setting ``split_seed``)."""
    return cfg.seed if cfg.split_seed is None else cfg.split_seed


# ---- the picture cache ---------------------------------------------------------------------
def run_paths(data: Splits) -> list[str]:
    """Every picture of ``data`` (training, validation and eval rows), sorted."""
    frames = [data.train, data.val] + ([data.eval] if data.eval is not None else [])
    # sorted, not split order: every fold and seed of one data set shares one cache
    return sorted({str(p) for df in frames for p in df["path"]})


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
        cls, cfg: Any, data: Splits, ctx: DistContext = SINGLE, progress: bool = True
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


def _training_reader(cfg: Any, loader: PreparedLoader, cache: ImageCache | None) -> Any:
    """What training reads a crop's pictures with: its cache (a stored mirror image or not,
    seeded, with ``cache_flips``), else its loader."""
    if cache is None:
        return loader
    return FlipChoice(cache) if cfg.cache_flips else cache


def inputs_record(cfg: Any, weights: Weights | None, faces: FaceBoxes | None) -> dict[str, Any]:
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
    cfg: Any,
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


def frame_loader(
    df: pd.DataFrame,
    cfg: Any,
    prepared: Any = None,
    batch_size: int | None = None,
    pin_memory: bool = False,
) -> DataLoader:
    """The rows of ``df`` in order, through ``cfg``'s evaluation transform (pictures read by
    ``prepared``, a cache, when given), as uint8 batches for ``kit.batch.to_model_input``;
    targets are -1. A face crop with no ``prepared`` prepares each picture around its stored
    face box (those of the run's data folder)."""
    if prepared is None and CROP_MODES.get(cfg.crop_mode).needs_boxes:
        paths = df["path"].astype(str).tolist()
        prepared = prepared_loader(cfg, resolve_data_dir(cfg), paths, progress=False)
    _, eval_tf = build_transforms(cfg, prepared=prepared is not None, tensor=False)
    source = {} if prepared is None else {"loader": prepared}
    batch_size = batch_size or cfg.eval_batch_size
    return DataLoader(
        ImageDataset(df, eval_tf, labels=None, **source),
        batch_size=batch_size,
        shuffle=False,
        # workers only pay off when they can prepare one batch while another is predicted
        num_workers=resolve_workers(cfg.workers) if len(df) > batch_size else 0,
        pin_memory=pin_memory,
        collate_fn=collate_pictures,
    )
