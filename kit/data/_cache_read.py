"""Reading an image cache: its metadata and :class:`ImageCache`, which reads whole batches of
rows with positional reads.

A row copied out of a memory map costs a page fault for every 4 KiB page the process has not
touched yet (a 224x224 picture is 37 pages): with a cache larger than memory's share of each
worker, reads are mostly faults. :meth:`ImageCache.rows` instead reads a batch's rows in file
order with ``os.preadv`` straight into the batch array (the kernel copies from its page cache;
no mapping is faulted in), falling back to the map where ``preadv`` is missing (Windows).
"""

from __future__ import annotations

import dataclasses
import os
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT", "CacheMeta", "ImageCache"]

#: Bumped when the file layout changes, so old caches miss instead of being misread.
FORMAT = 1
_PREADV = hasattr(os, "preadv")


@dataclasses.dataclass(frozen=True)
class CacheMeta:
    """The content of ``<key>.json``."""

    key: str
    paths: list[str]
    size: tuple[int, int]
    crop: Any
    extra: Any
    flips: bool
    created: str
    complete: bool
    format: int = FORMAT


class ImageCache:
    """Read-only cached pictures, memory-mapped on first use.

    Pickles as its file path and metadata only: a DataLoader worker reopens the map, and every
    process shares the same pages through the OS page cache. ``cache(path)`` returns that path's
    picture, so a cache can stand in for a loader function.
    """

    def __init__(self, path: str | os.PathLike[str], meta: CacheMeta) -> None:
        self.path = Path(path)
        self.meta = meta
        self.key = meta.key  # the image_key it was built for
        self.paths = meta.paths  # image paths in row order
        self.has_flips = meta.flips  # whether flipped() works
        self._arrays: dict[Path, np.ndarray] = {}
        self._files: dict[Path, int] = {}  # descriptors for os.preadv, closed with the cache
        self._index: dict[str, int] | None = None

    @property
    def flip_path(self) -> Path:
        """``<key>_flip.npy`` beside :attr:`path` (exists only when :attr:`has_flips`)."""
        return self.path.with_name(f"{self.key}_flip.npy")

    @property
    def nbytes(self) -> int:
        """Bytes of pixel data on disk, flipped copies included."""
        h, w = self.meta.size
        return len(self) * h * w * 3 * (2 if self.has_flips else 1)

    def __len__(self) -> int:
        return len(self.meta.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        """Picture ``i`` as a fresh, writable (H, W, 3) uint8 array."""
        return self.rows([i])[0]

    def flipped(self, i: int) -> np.ndarray:
        """Picture ``i`` flipped left-right, as stored by ``build_cache(..., flips=True)``."""
        return self.rows([i], [True])[0]

    def rows(self, indices: Sequence[int], flipped: Sequence[bool] | None = None) -> np.ndarray:
        """Pictures ``indices`` (their stored mirror images where ``flipped`` says so) as one
        fresh (N, H, W, 3) uint8 array in the order given, read in file order."""
        flips = [False] * len(indices) if flipped is None else [bool(f) for f in flipped]
        if any(flips) and not self.has_flips:
            raise ValueError(f"cache {self.key} holds no flipped copies; build it with flips=True")
        rows = [range(len(self))[i] for i in indices]  # IndexError past either end
        out = np.empty((len(rows), *self.meta.size, 3), np.uint8)
        for k in sorted(range(len(rows)), key=lambda k: (flips[k], rows[k])):
            self._read(self.flip_path if flips[k] else self.path, rows[k], out[k])
        return out

    def _read(self, path: Path, row: int, into: np.ndarray) -> None:
        array = self._array(path)
        if _PREADV and array.flags.c_contiguous:
            if path not in self._files:
                fd = self._files[path] = os.open(path, os.O_RDONLY)
                weakref.finalize(self, os.close, fd)
            start = array.offset + row * into.nbytes
            if os.preadv(self._files[path], [into], start) == into.nbytes:
                return
        into[...] = array[row]  # no preadv, or a short read

    def index_of(self, path: str | os.PathLike[str]) -> int:
        """Row of ``path`` (as given to ``build_cache``)."""
        if self._index is None:
            self._index = {}
            for i, p in enumerate(self.meta.paths):
                self._index.setdefault(p, i)
        try:
            return self._index[os.fspath(path)]
        except KeyError:
            raise KeyError(
                f"{os.fspath(path)} is not in image cache {self.path} ({len(self)} images); "
                f"was the cache built from another frame?"
            ) from None

    def __call__(self, path: str) -> np.ndarray:
        return self[self.index_of(path)]

    def read_many(self, paths: Sequence[str], seeds: Sequence[int] | None = None) -> np.ndarray:
        """The pictures of ``paths`` in one read (``seeds``: unused, a cache draws nothing)."""
        return self.rows([self.index_of(p) for p in paths])

    def _array(self, path: Path) -> np.ndarray:
        if path not in self._arrays:
            self._arrays[path] = np.load(path, mmap_mode="r")
        return self._arrays[path]

    def __getstate__(self) -> dict[str, Any]:  # a worker opens its own maps and descriptors
        return {"path": self.path, "meta": self.meta}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["meta"])

    def __repr__(self) -> str:
        h, w = self.meta.size
        flips = ", flips" if self.has_flips else ""
        return f"ImageCache({self.path}, {len(self)} x {h}x{w}{flips})"
