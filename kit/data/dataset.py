"""The torch ``Dataset`` over a frame of images: (image tensor, training target) pairs.

Reading a picture is one small replaceable function, ``loader(path) -> uint8 RGB (H, W, 3)``.
The default decodes the file; a cache of prepared (cropped, resized) pictures can take its
place together with ``kit.transforms.build_transforms(cfg, prepared=True)``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image
from torch.utils.data import Dataset

from kit.heads import OUTPUT_KINDS, head_spec
from kit.labels import AGE_THRESHOLDS, age_to_group, encode

__all__ = ["ImageDataset", "load_rgb", "training_labels"]

Loader = Callable[[str], np.ndarray]
#: What PIL raises for a missing, empty, cut-short or corrupt file (not only OSError).
_BAD_IMAGE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    Image.DecompressionBombError,
)


def load_rgb(path: str) -> np.ndarray:
    """Decode one picture to a uint8 RGB array (H, W, 3), naming the file if it is unreadable."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except _BAD_IMAGE_ERRORS as err:
        raise OSError(f"cannot read image {path}: {type(err).__name__}: {err}") from err


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

    ``labels=None`` gives target -1 (inference). Otherwise the target is what ``head``'s
    output kind trains on (``kit.heads``): the 18-way class id for ``"single"``, a
    ``{"mask", "gender", "age"}`` dict for ``"multi"``.
    """

    def __init__(
        self,
        df: pd.DataFrame,
        transform: Callable[..., dict[str, Any]] | None,
        labels: str | None = "label",
        age_thresholds: tuple[int, int] = AGE_THRESHOLDS,
        head: str = "single",
        loader: Loader = load_rgb,
    ) -> None:
        if "path" not in df.columns:
            raise ValueError(f"the frame has no 'path' column; found {list(df.columns)}")
        kind = head_spec(head).kind
        self.paths = df["path"].astype(str).tolist()
        self.transform = transform
        self.loader = loader
        self.head, self.kind = head, kind
        self.targets = None if labels is None else training_labels(df, age_thresholds, labels)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        image = self.loader(self.paths[i])
        if self.transform is not None:
            image = self.transform(image=image)["image"]
        return image, self._target(i)

    def _target(self, i: int) -> Any:
        if self.targets is None:
            return -1
        return OUTPUT_KINDS[self.kind].target(int(self.targets[i]))
