"""The torch ``Dataset`` over a frame of images: (image tensor, training target) pairs.

Reading a picture is one small replaceable function, ``loader(path) -> uint8 RGB (H, W, 3)``.
The default decodes the file as a viewer shows it (:func:`kit.data.decode.load_rgb`); a cache of prepared (cropped, resized) pictures can take its
place together with ``kit.transforms.build_transforms(cfg, prepared=True)``.

The dataset knows nothing of model heads: the target of a row is ``target(18-way class id)``,
a function the caller passes (training passes its head's ``OutputKind.target``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from torch.utils.data import Dataset

from kit.data.cache import ImageCache
from kit.data.decode import load_rgb
from kit.labels import AGE_THRESHOLDS, NUM_CLASSES, age_to_group, encode

__all__ = ["FlipChoice", "ImageDataset", "load_rgb", "training_labels"]

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

    ``labels=None`` gives target -1 (inference). Otherwise the target is ``target(class id)``
    of the row's 18-way training label: ``int`` (the default) for an 18-way head, a head's
    ``OutputKind.target`` (``kit.heads``) for others, e.g. a ``{"mask", "gender", "age"}`` dict.
    ``soft`` (soft pseudo-labels): ``(n, 18)`` probability rows, NaN where a row has its label
    only; every target is then ``target(18-way probabilities)`` (a head's ``soft_target``),
    a labelled row's the one-hot of its training label.
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
        image = self.loader(self.paths[i])
        if self.transform is not None:
            image = self.transform(image=image)["image"]
        if self.soft is not None:
            return image, self.target(self.soft[i])
        return image, -1 if self.targets is None else self.target(int(self.targets[i]))


class FlipChoice:
    """A loader over a cache built with flips: the stored picture or its stored mirror image,
    with even odds; seeded per sample by ``kit.data.sampling.SeededDataset``."""

    def __init__(self, cache: ImageCache) -> None:
        self.cache = cache
        self._rng = np.random.default_rng(0)

    def set_random_seed(self, seed: int) -> None:
        """Seed the next choices."""
        self._rng = np.random.default_rng(seed)

    def __call__(self, path: str) -> np.ndarray:
        i = self.cache.index_of(path)
        return self.cache.flipped(i) if self._rng.random() < 0.5 else self.cache[i]
