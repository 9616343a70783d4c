"""The torch ``Dataset`` over a frame of images: (image tensor, training target) pairs.

A picture is read by ``loader(path) -> uint8 RGB (H, W, 3)`` (default :func:`load_rgb`; a cache
of prepared pictures pairs with ``build_transforms(cfg, prepared=True)``). A loader with
``read_many(paths, seeds)`` reads a DataLoader's whole batch in one call (``__getitems__``). The
target of a row is ``target(18-way class id)``: training passes its head's ``OutputKind.target``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, default_collate

from kit.data.image_cache import ImageCache
from kit.data.layout import load_rgb
from kit.labels import AGE_THRESHOLDS, NUM_CLASSES, age_to_group, encode

__all__ = [
    "CropChoice",
    "FlipChoice",
    "ImageDataset",
    "collate_pictures",
    "load_rgb",
    "training_labels",
]

Loader = Callable[[str], np.ndarray]


def training_labels(
    df: pd.DataFrame, age_thresholds: tuple[int, int] = AGE_THRESHOLDS, column: str = "label"
) -> np.ndarray:
    """18-way training labels: ``df[column]``, or re-derived from mask/gender/age when the
    training age thresholds differ from the official ones (validation stays official)."""
    if tuple(age_thresholds) == tuple(AGE_THRESHOLDS):
        if column not in df.columns:
            raise ValueError(f"the frame has no label column {column!r}; found {list(df.columns)}")
        return df[column].to_numpy(dtype=np.int64)
    missing = [c for c in ("mask", "gender", "age") if c not in df.columns]
    if missing:
        raise ValueError(
            f"age thresholds {tuple(age_thresholds)} need columns mask, gender and age; "
            f"the frame lacks {missing}"
        )
    groups = age_to_group(df["age"].to_numpy(), tuple(age_thresholds))
    return encode(df["mask"].to_numpy(np.int64), df["gender"].to_numpy(np.int64), groups)


class ImageDataset(Dataset):
    """``(transform(image)["image"], target)`` for every row of ``df`` (its ``path`` column).

    The target is ``target(the row's 18-way training label)``, or -1 with ``labels=None``
    (inference). ``soft`` (soft pseudo-labels): ``(n, 18)`` probability rows, NaN where a row
    has its label only; every target is then ``target(18-way probabilities)``, a labelled row's
    the one-hot of its label.
    """

    def __init__(
        self,
        df: pd.DataFrame,
        transform: Callable[..., dict[str, Any]] | None,
        labels: str | None = "label",
        age_thresholds: tuple[int, int] = AGE_THRESHOLDS,
        target: Callable[[int], Any] = int,
        loader: Loader = load_rgb,
        soft: np.ndarray | None = None,
    ) -> None:
        if "path" not in df.columns:
            raise ValueError(f"the frame has no 'path' column; found {list(df.columns)}")
        self.paths = df["path"].astype(str).tolist()
        self.transform = transform
        self.loader = loader
        self.target = target
        self.targets = None if labels is None else training_labels(df, age_thresholds, labels)
        self.soft = None
        if soft is not None and self.targets is not None:  # labelled rows: one-hot
            onehot = np.eye(NUM_CLASSES, dtype=np.float32)[self.targets]
            self.soft = np.where(np.isnan(soft), onehot, soft).astype(np.float32)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        return self.sample(i, self.loader(self.paths[i]))

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Any, Any]]:
        return [self.sample(i, image) for i, image in zip(indices, self.read(indices), strict=True)]

    def read(self, indices: Sequence[int], seeds: Sequence[int] | None = None) -> list[np.ndarray]:
        """The pictures of rows ``indices`` before the transform; ``seeds`` (one per row) fix a
        loader's own random choices."""
        return list(_read_with(self.loader, [self.paths[i] for i in indices], seeds))

    def sample(self, i: int, image: np.ndarray) -> tuple[Any, Any]:
        if self.transform is not None:
            image = self.transform(image=image)["image"]
        if self.soft is not None:
            return image, self.target(self.soft[i])
        return image, -1 if self.targets is None else self.target(int(self.targets[i]))


def collate_pictures(batch: Sequence[tuple[Any, Any]]) -> list[Any]:
    """``default_collate``, except that pictures which are the rows, in order, of one array (a
    batch read whole from the cache, untouched by the transform) become its tensor uncopied."""
    images = [sample[0] for sample in batch]
    whole = images[0].base if images and isinstance(images[0], np.ndarray) else None
    if not _rows_of(images, whole):
        return default_collate(batch)
    return [torch.from_numpy(whole), default_collate([sample[1] for sample in batch])]


def _rows_of(images: list[Any], whole: Any) -> bool:
    if not isinstance(whole, np.ndarray) or whole.shape != (len(images), *images[0].shape):
        return False
    start, step = whole.ctypes.data, whole.strides[0]
    return all(
        isinstance(im, np.ndarray) and im.base is whole and im.ctypes.data == start + k * step
        for k, im in enumerate(images)
    )


class _SeededChoice:
    """A loader whose random choices come from per-picture seeds: those given to
    ``read_many``, else counted on from the last :meth:`set_random_seed` (seeded per sample
    by ``kit.data.sampling.SeededDataset``)."""

    _seed = 0

    def set_random_seed(self, seed: int) -> None:
        self._seed = int(seed)

    def __call__(self, path: str) -> np.ndarray:
        return self.read_many([path])[0]

    def read_many(self, paths: Sequence[str], seeds: Sequence[int] | None = None) -> np.ndarray:
        if seeds is None:
            seeds = range(self._seed, self._seed + len(paths))
            self._seed += len(paths)
        return self.choose(list(paths), [int(s) for s in seeds])

    def choose(self, paths: list[str], seeds: list[int]) -> np.ndarray:
        raise NotImplementedError


class FlipChoice(_SeededChoice):
    """A loader over a cache built with flips: the picture or its mirror image, even odds."""

    def __init__(self, cache: ImageCache) -> None:
        self.cache = cache

    def choose(self, paths: list[str], seeds: list[int]) -> np.ndarray:
        rows = [self.cache.index_of(p) for p in paths]
        return self.cache.rows(rows, [_coin(s) for s in seeds])


class CropChoice(_SeededChoice):
    """A training loader that shows a share ``p`` of the pictures of ``applies`` under the other
    crop (``--crop-mix``): loader ``other`` instead of ``own``. Its draw is independent of
    :class:`FlipChoice`'s, and both sub-loaders get the sample's seed."""

    def __init__(self, own: Loader, other: Loader, p: float, applies: Collection[str]) -> None:
        self.own, self.other, self.p = own, other, float(p)
        self.applies = frozenset(applies)

    def choose(self, paths: list[str], seeds: list[int]) -> np.ndarray:
        other = [
            p in self.applies and _unit(s, _CROP_SALT) < self.p
            for p, s in zip(paths, seeds, strict=True)
        ]
        out: list[np.ndarray | None] = [None] * len(paths)
        for loader, pick in ((self.own, False), (self.other, True)):
            ks = [k for k, o in enumerate(other) if o == pick]
            if ks:
                read = _read_with(loader, [paths[k] for k in ks], [seeds[k] for k in ks])
                for k, picture in zip(ks, read, strict=True):
                    out[k] = picture
        return np.stack(out)


def _read_with(
    loader: Any, paths: Sequence[str], seeds: Sequence[int] | None
) -> Sequence[np.ndarray]:
    """``loader``'s pictures of ``paths``: in one call if it reads batches, else one by one,
    seeding the loader first when it draws and ``seeds`` are given."""
    if hasattr(loader, "read_many"):
        return loader.read_many(paths, seeds)
    pictures = []
    for k, path in enumerate(paths):
        if seeds is not None and hasattr(loader, "set_random_seed"):
            loader.set_random_seed(seeds[k])
        pictures.append(loader(path))
    return pictures


_MASK64 = 2**64 - 1
_CROP_SALT = 0x5EED_C409  # the crop draw of a seed, apart from its flip coin


def _mix64(seed: int) -> int:
    """SplitMix64's output for ``seed``: a microsecond where a seeded numpy generator takes
    tens (it runs once per training picture)."""
    z = (int(seed) + 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def _coin(seed: int) -> bool:
    return bool(_mix64(seed) >> 63)


def _unit(seed: int, salt: int) -> float:
    """A number in [0, 1) for ``seed`` and ``salt``, uniform over seeds."""
    return (_mix64(_mix64(salt) ^ int(seed)) >> 11) / 2.0**53
