"""A preprocessed image cache: decode, crop and resize every picture once, then memory-map it.

Files in ``cache_dir`` for one key (:func:`image_key`): ``<key>.npy``, (N, H, W, 3) uint8, row i
``load(paths[i])``; ``<key>_flip.npy``, the rows flipped left-right (``flips=True``);
``<key>.json``, :class:`CacheMeta`, written last as the commit marker (no json saying
``"complete": true``, no cache); ``.<key>.lock``, whose ``filelock`` (an OS lock, released even
when a build is killed) makes builds of one key wait for each other and proves no live build
writes that key's temporary files. Arrays are written under temporary names, renamed once
complete (``kit.io.atomic_path``); any later build in the folder deletes a killed build's.
``python -m kit.cache --list / --prune`` shows and removes old caches.

Reading: a row copied out of a memory map costs a page fault per 4 KiB page not yet touched, so
with a cache larger than a worker's share of memory reads would be mostly faults.
:meth:`ImageCache.rows` instead reads a batch's rows in file order with ``os.preadv`` straight
into the batch array (the map where ``preadv`` is missing, on Windows).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from kit.data._common import pool_map
from kit.io import OutputError, atomic_path, read_json, write_json
from kit.progress import Progress
from kit.registry import Registry

__all__ = [
    "EXECUTORS",
    "FORMAT",
    "CacheMeta",
    "ImageCache",
    "build_cache",
    "build_lock",
    "cache_dir_for",
    "clean_leftovers",
    "files_key",
    "image_key",
    "load_cache",
    "lock_free",
    "lock_path",
    "read_meta",
    "temp_files",
    "write_flips",
    "write_images",
]


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
    """Read-only cached pictures, memory-mapped on first use; ``cache(path)`` is that path's
    picture, so a cache can stand in for a loader. Pickles as its path and metadata only: a
    DataLoader worker reopens the map (the OS page cache shares the pages)."""

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
        return self.path.with_name(f"{self.key}_flip.npy")

    @property
    def nbytes(self) -> int:
        """Bytes of pixel data on disk, flipped copies included."""
        h, w = self.meta.size
        return len(self) * h * w * 3 * (2 if self.has_flips else 1)

    def __len__(self) -> int:
        return len(self.meta.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.rows([i])[0]

    def flipped(self, i: int) -> np.ndarray:
        return self.rows([i], [True])[0]

    def rows(self, indices: Sequence[int], flipped: Sequence[bool] | None = None) -> np.ndarray:
        """Pictures ``indices`` (mirror images where ``flipped`` says so) as one fresh
        (N, H, W, 3) uint8 array in the order given, read in file order."""
        flips = [False] * len(indices) if flipped is None else [bool(f) for f in flipped]
        if any(flips) and not self.has_flips:
            raise ValueError(f"cache {self.key} holds no flipped copies; build it with flips=True")
        rows = [range(len(self))[i] for i in indices]  # IndexError past either end
        out = np.empty((len(rows), *self.meta.size, 3), np.uint8)
        for k in sorted(range(len(rows)), key=lambda k: (flips[k], rows[k])):
            self._read(self.flip_path if flips[k] else self.path, rows[k], out[k])
        return out

    def _read(self, path: Path, row: int, into: np.ndarray) -> None:
        if path not in self._arrays:
            self._arrays[path] = np.load(path, mmap_mode="r")
        array = self._arrays[path]
        if _PREADV and array.flags.c_contiguous:
            if path not in self._files:
                fd = self._files[path] = os.open(path, os.O_RDONLY)
                weakref.finalize(self, os.close, fd)
            start = array.offset + row * into.nbytes
            if os.preadv(self._files[path], [into], start) == into.nbytes:
                return
        into[...] = array[row]  # no preadv, or a short read

    def index_of(self, path: str | os.PathLike[str]) -> int:
        if self._index is None:  # the first row of a path listed twice
            self._index = {p: i for i, p in reversed(list(enumerate(self.meta.paths)))}
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

    def __getstate__(self) -> dict[str, Any]:  # a worker opens its own maps and descriptors
        return {"path": self.path, "meta": self.meta}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["meta"])

    def __repr__(self) -> str:
        h, w = self.meta.size
        flips = ", flips" if self.has_flips else ""
        return f"ImageCache({self.path}, {len(self)} x {h}x{w}{flips})"


#: kit.io.atomic_path's temporary names for a key's files (group 1 is the key).
_TEMP = re.compile(r"^\.([0-9a-f]{32})(?:_flip)?\.(?:npy|json)\..+\.tmp$")

#: ``build_cache(executor=...)`` name -> pool. Threads suit PIL / OpenCV loaders (they release
#: the GIL while decoding and resizing) and take any callable; processes need a picklable load.
EXECUTORS: Registry[type[Executor]] = Registry("executor")
EXECUTORS.register("thread", ThreadPoolExecutor)
EXECUTORS.register("process", ProcessPoolExecutor)

_CHUNK = 256  # rows copied per step when writing flips: bounded memory, few calls


def lock_path(root: Path, key: str) -> Path:
    return root / f".{key}.lock"


@contextlib.contextmanager
def build_lock(root: Path, key: str) -> Iterator[None]:
    """Hold the lock of ``key`` in ``root`` (released by the OS even on SIGKILL)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(lock_path(root, key))
        lock.acquire()
    except OSError as err:
        raise OutputError(
            err.errno or 0,
            f"cannot write the image cache in {root}: {err.strerror or err}. Nothing was cached; "
            "pass a writable folder with --cache-dir DIR, or train without the cache "
            "(--no-cache).",
        ) from err
    try:
        yield
    finally:
        lock.release()


def temp_files(root: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            if m := _TEMP.match(entry.name):
                found.setdefault(m.group(1), []).append(root / entry.name)
    return found


def clean_leftovers(root: Path, key: str) -> list[Path]:
    """Delete and return the temporary files of interrupted builds in ``root`` (call holding
    ``key``'s lock): ``key``'s own, and any other key's whose lock is free."""
    removed = []
    for other, files in sorted(temp_files(root).items()):
        if other == key or lock_free(root, other):
            for f in files:
                f.unlink(missing_ok=True)
            removed += files
    return removed


def lock_free(root: Path, key: str) -> bool:
    """Whether no live build holds ``key``'s lock in ``root`` (a lock file that cannot be
    opened, read-only say, counts as held: its key is left alone)."""
    if not lock_path(root, key).exists():  # every build creates it first: nobody holds it
        return True
    try:
        with FileLock(lock_path(root, key), timeout=0):
            return True
    except (Timeout, OSError):  # Timeout: that key is being built right now
        return False


def _load_checked(load: Callable[[str], Any], shape: tuple[int, ...], path: str) -> np.ndarray:
    try:
        img = load(path)
    except Exception as err:
        if path in str(err):
            raise
        raise _with_path(err, path) from err
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.shape != shape:
        found = f"{img.shape} {img.dtype}" if isinstance(img, np.ndarray) else type(img).__name__
        raise ValueError(
            f"{path}: load() returned {found}; expected a {shape} uint8 array "
            f"(every cached picture has the cache's size)"
        )
    return img


def _with_path(err: Exception, path: str) -> Exception:
    try:
        return type(err)(f"{path}: {err}")
    except Exception:
        return RuntimeError(f"{path}: {type(err).__name__}: {err}")


def _new_npy(path: Path, shape: tuple[int, ...]) -> np.memmap:
    """A new uint8 ``.npy`` of ``shape`` at ``path``, mapped. Its blocks are reserved first: a
    memmap over a sparse file dies of SIGBUS when the disk fills, an ordinary "disk full"
    error instead comes before any decoding."""
    out = np.lib.format.open_memmap(path, "w+", dtype=np.uint8, shape=shape)
    if hasattr(os, "posix_fallocate"):
        with open(path, "r+b") as fh:
            os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
    return out


def write_images(
    target: Path,
    names: Sequence[str],
    load: Callable[[str], Any],
    size: tuple[int, int],
    workers: int,
    executor: str,
    progress: bool,
) -> None:
    shape = (*size, 3)
    task = partial(_load_checked, load, shape)
    # Bounded batches: results wait in memory only until their batch is written.
    step = max(1, workers) * 8
    bar = Progress("caching images", len(names), not progress, what="pictures", first_after=5)
    pool = pool_map(workers, EXECUTORS.use(executor))
    try:
        with _cache_fix(), atomic_path(target) as tmp, bar, pool as imap:
            out = _new_npy(tmp, (len(names), *shape))
            for start in range(0, len(names), step):
                batch = names[start : start + step]
                for i, img in enumerate(_carried(imap(task, batch)), start):
                    out[i] = img
                bar.step(len(batch), len(batch))
            out.flush()
            del out
    except _LoadError as carrier:
        raise carrier.error from carrier.error.__cause__


#: What a cache that cannot be written suggests: the flags that move or skip it.
CACHE_FIX = (
    "pass a folder with room with --cache-dir DIR (Config.cache_dir), train without the cache "
    "(--no-cache), or free space"
)


@contextlib.contextmanager
def _cache_fix() -> Iterator[None]:
    """An :class:`~kit.io.OutputError` raised inside suggests :data:`CACHE_FIX`."""
    try:
        yield
    except OutputError as err:
        raise err.with_fix(CACHE_FIX) from err.__cause__


class _LoadError(Exception):
    """Carries a loader's error through ``atomic_path``, which would otherwise report an
    unreadable image (an OSError) as a cache file that cannot be written."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _carried(results: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    try:
        yield from results
    except Exception as err:
        raise _LoadError(err) from None


def write_flips(source: Path, target: Path) -> None:
    src = np.load(source, mmap_mode="r")
    with _cache_fix(), atomic_path(target) as tmp:
        out = _new_npy(tmp, src.shape)
        for start in range(0, len(src), _CHUNK):
            out[start : start + _CHUNK] = src[start : start + _CHUNK, :, ::-1]
        out.flush()
        del out


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
    """:func:`files_key` of everything the cached pixels depend on: the files, the output
    ``size`` (height, width), the ``crop`` spec and ``extra`` (JSON values)."""
    spec = {"format": FORMAT, "size": _check_size(size), "crop": crop, "extra": extra}
    try:
        return files_key(paths, spec)
    except TypeError as err:
        raise TypeError(
            f"crop and extra key the cache, so they must be JSON values: {err}"
        ) from err


def cache_dir_for(
    cache_dir: str | os.PathLike[str] | None, data_dir: str | os.PathLike[str]
) -> Path:
    """``cache_dir`` (``Config.cache_dir``), or ``<data_dir>/cache``."""
    return Path(cache_dir).expanduser() if cache_dir else Path(data_dir) / "cache"


def read_meta(path: Path) -> CacheMeta | None:
    """The :class:`CacheMeta` in ``path``, or None when absent or damaged."""
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
    """Cache ``load(path)`` (uint8 (H, W, 3), ``size`` = (H, W)) for every path, or reuse the
    complete cache with the same key; ``workers`` > 0 decode in an ``EXECUTORS[executor]``."""
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
