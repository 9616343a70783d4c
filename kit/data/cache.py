"""A preprocessed image cache: decode, crop and resize every picture once, then memory-map it.

Files in ``cache_dir`` for one key (see :func:`image_key`):

- ``<key>.npy``: (N, H, W, 3) uint8; row i is ``load(paths[i])``.
- ``<key>_flip.npy``: the same rows flipped left-right (only when built with ``flips=True``).
- ``<key>.json``: :class:`CacheMeta`. Written last, so it is the commit marker: without a json
  saying ``"complete": true`` there is no cache, whatever ``.npy`` files lie around.
- ``.<key>.lock``: empty; its ``filelock`` makes concurrent builds of one key wait for each
  other, and tells any build in the folder whether a key's temporary files are live.

Arrays are written under temporary names and renamed only once complete and flushed
(``kit.io.atomic_path``), so an interrupted build never leaves a file under a final name; the
next build of any key in the folder deletes a killed build's temporary files (their key's lock
is free). ``python -m kit.cache --list / --prune`` shows and removes old caches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kit.data._cache_read import FORMAT, CacheMeta, ImageCache
from kit.data._cache_write import (
    EXECUTORS,
    build_lock,
    clean_leftovers,
    write_flips,
    write_images,
)
from kit.io import read_json, write_json

__all__ = [
    "EXECUTORS",
    "CacheMeta",
    "ImageCache",
    "build_cache",
    "cache_dir_for",
    "files_key",
    "image_key",
    "load_cache",
    "read_meta",
]


def _check_size(size: Sequence[int]) -> tuple[int, int]:
    hw = tuple(size)
    if len(hw) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in hw):
        raise ValueError(f"size must be (height, width), two positive ints; got {size!r}")
    return int(hw[0]), int(hw[1])


def files_key(paths: Sequence[str | os.PathLike[str]], spec: Any) -> str:
    """Hex digest of every file's path, byte size and mtime_ns and of ``spec`` (JSON values):
    the key of anything computed from these files (the image cache, stored face boxes)."""
    try:
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    except TypeError as err:
        raise TypeError(f"a cache key's settings must be JSON values: {err}") from err
    for p in paths:
        name = os.fspath(p)
        try:
            st = os.stat(name)
        except OSError as err:
            raise FileNotFoundError(f"{name}: cannot key the image cache: {err.strerror}") from err
        # NUL cannot occur in a path, so the records cannot run into each other.
        digest.update(b"\n" + os.fsencode(name) + f"\0{st.st_size}\0{st.st_mtime_ns}".encode())
    return digest.hexdigest()[:32]


def image_key(
    paths: Sequence[str | os.PathLike[str]],
    *,
    size: Sequence[int],
    crop: Any,
    extra: dict[str, Any] | None = None,
) -> str:
    """Hex digest of everything the cached pixels depend on: every file's path, byte size and
    mtime_ns, the output ``size`` (height, width), the ``crop`` spec and ``extra`` (JSON values)."""
    spec = {"format": FORMAT, "size": _check_size(size), "crop": crop, "extra": extra}
    try:
        return files_key(paths, spec)
    except TypeError as err:
        raise TypeError(
            f"crop and extra key the cache, so they must be JSON values: {err}"
        ) from err


def cache_dir_for(cfg: Any, data_dir: str | os.PathLike[str]) -> Path:
    """The cache folder of a run: ``cfg.cache_dir``, or ``<data_dir>/cache``."""
    return Path(cfg.cache_dir).expanduser() if cfg.cache_dir else Path(data_dir) / "cache"


def read_meta(path: Path) -> CacheMeta | None:
    """The :class:`CacheMeta` in the json ``path``, or None when absent or damaged."""
    try:
        raw = read_json(path)
        meta = CacheMeta(**raw)
        return dataclasses.replace(meta, paths=list(meta.paths), size=_check_size(meta.size))
    except (OSError, ValueError, TypeError):
        return None


def _npy_shape(path: Path) -> tuple[int, ...] | None:
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    return arr.shape if arr.dtype == np.uint8 else None


def load_cache(cache_dir: str | os.PathLike[str], key: str) -> ImageCache | None:
    """The complete cache ``key`` in ``cache_dir``, or None when absent, partial or damaged."""
    root = Path(cache_dir)
    meta = read_meta(root / f"{key}.json")
    if meta is None or meta.key != key or meta.complete is not True or meta.format != FORMAT:
        return None
    cache = ImageCache(root / f"{key}.npy", meta)
    expected = (len(meta.paths), *meta.size, 3)
    files = [cache.path, cache.flip_path] if meta.flips else [cache.path]
    return cache if all(_npy_shape(f) == expected for f in files) else None


def build_cache(
    paths: Sequence[str | os.PathLike[str]],
    load: Callable[[str], np.ndarray],
    *,
    size: Sequence[int],
    crop: Any = None,
    cache_dir: str | os.PathLike[str],
    extra: dict[str, Any] | None = None,
    workers: int = 0,
    progress: bool = True,
    flips: bool = False,
    executor: str = "thread",
) -> ImageCache:
    """Cache ``load(path)`` (an (H, W, 3) uint8 array, ``size`` = (H, W)) for every path, or
    reuse the complete cache with the same key. ``workers`` > 0 decodes in parallel with an
    ``EXECUTORS[executor]`` pool (``"process"`` needs a picklable ``load``)."""
    names = [os.fspath(p) for p in paths]
    if not names:
        raise ValueError("build_cache needs at least one image path; got none")
    EXECUTORS.get(executor)  # an unknown name fails before any work
    hw = _check_size(size)
    key = image_key(names, size=hw, crop=crop, extra=extra)
    root = Path(cache_dir)
    cache = load_cache(root, key)
    if cache is not None and cache.paths == names and (cache.has_flips or not flips):
        return cache  # no lock, no writes: a complete cache is usable from a read-only folder
    with build_lock(root, key):
        cache = load_cache(root, key)  # another process may have built it while we waited
        clean_leftovers(root, key)
        if cache is None or cache.paths != names:
            (root / f"{key}.json").unlink(missing_ok=True)
            write_images(root / f"{key}.npy", names, load, hw, workers, executor, progress)
            created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            meta = CacheMeta(key, names, hw, crop, extra, False, created, complete=True)
        else:
            meta = cache.meta
        if flips and not meta.flips:
            write_flips(root / f"{key}.npy", root / f"{key}_flip.npy")
            meta = dataclasses.replace(meta, flips=True)
        write_json(root / f"{key}.json", dataclasses.asdict(meta))
    return ImageCache(root / f"{key}.npy", meta)
