"""Writing an image cache: the build lock, leftover clean-up, parallel decode into a memmap.

The lock is ``filelock.FileLock`` on ``.<key>.lock`` (an OS lock: a killed build releases it,
and it works on Windows and macOS as on Linux). Holding a key's lock proves no live build
writes that key's temporary files, which is how any build in a folder tells a killed build's
pre-allocated leftovers from a running one's.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock, Timeout

from kit.io import OutputError, atomic_path
from kit.progress import Progress
from kit.registry import Registry

__all__ = [
    "EXECUTORS",
    "build_lock",
    "clean_leftovers",
    "lock_path",
    "temp_files",
    "write_flips",
    "write_images",
]

#: kit.io.atomic_path's temporary names for a key's files: ``.<key>[_flip].npy.<random>.tmp``
#: and ``.<key>.json.<random>.tmp``; group 1 is the key.
_TEMP = re.compile(r"^\.([0-9a-f]{32})(?:_flip)?\.(?:npy|json)\..+\.tmp$")

#: ``build_cache(executor=...)`` name -> pool. Threads suit PIL / OpenCV loaders (they release
#: the GIL while decoding and resizing) and take any callable; processes need a picklable load.
EXECUTORS: Registry[type[Executor]] = Registry("executor")
EXECUTORS.register("thread", ThreadPoolExecutor)
EXECUTORS.register("process", ProcessPoolExecutor)

_CHUNK = 256  # rows copied per step when writing flips: bounded memory, few calls


def lock_path(root: Path, key: str) -> Path:
    """``root/.<key>.lock``: held by whoever builds ``key``."""
    return root / f".{key}.lock"


@contextlib.contextmanager
def build_lock(root: Path, key: str) -> Iterator[None]:
    """Hold the exclusive lock of ``key`` in ``root`` (released by the OS even on SIGKILL)."""
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
    """Temporary files of cache builds in ``root``, by key."""
    found: dict[str, list[Path]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            if m := _TEMP.match(entry.name):
                found.setdefault(m.group(1), []).append(root / entry.name)
    return found


def clean_leftovers(root: Path, key: str) -> list[Path]:
    """Delete the temporary files of interrupted builds in ``root`` (call holding ``key``'s
    lock): ``key``'s own, and any other key's whose lock is free (no live build owns them).
    Returns the files deleted."""
    removed = []
    for other, files in sorted(temp_files(root).items()):
        if other == key or not lock_path(root, other).exists():  # no lock file: no live build
            removed += _unlink(files)
            continue
        try:
            with FileLock(lock_path(root, other), timeout=0):
                removed += _unlink(files)
        except Timeout:  # that key is being built right now: its files are live
            continue
        except OSError:  # a read-only lock file, say: leave that key alone
            continue
    return removed


def _unlink(files: list[Path]) -> list[Path]:
    for f in files:
        f.unlink(missing_ok=True)
    return files


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
    """The loader's error, of the same type where possible, with the file named."""
    try:
        return type(err)(f"{path}: {err}")
    except Exception:
        return RuntimeError(f"{path}: {type(err).__name__}: {err}")


@contextlib.contextmanager
def _mapper(workers: int, executor: str) -> Iterator[Callable[..., Iterator[Any]]]:
    if workers <= 0:
        yield map
        return
    with EXECUTORS.use(executor)(max_workers=workers) as pool:
        yield pool.map


def _preallocate(path: Path) -> None:
    # A memmap over a sparse file dies of SIGBUS when the disk fills; reserving the blocks
    # first turns that into an ordinary "disk full" error before any decoding.
    if hasattr(os, "posix_fallocate"):
        with open(path, "r+b") as fh:
            os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)


def write_images(
    target: Path,
    names: Sequence[str],
    load: Callable[[str], Any],
    size: tuple[int, int],
    workers: int,
    executor: str,
    progress: bool,
) -> None:
    """Write ``load(name)`` for every name into the (N, H, W, 3) uint8 ``.npy`` ``target``."""
    shape = (*size, 3)
    task = partial(_load_checked, load, shape)
    # Bounded batches: results wait in memory only until their batch is written.
    step = max(1, workers) * 8
    bar = Progress("caching images", len(names), not progress, what="pictures", first_after=5)
    try:
        with _cache_fix(), atomic_path(target) as tmp, bar, _mapper(workers, executor) as imap:
            out = np.lib.format.open_memmap(tmp, "w+", dtype=np.uint8, shape=(len(names), *shape))
            _preallocate(tmp)
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
    """Write the left-right flip of every row of the ``.npy`` ``source`` to ``target``."""
    src = np.load(source, mmap_mode="r")
    with _cache_fix(), atomic_path(target) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=src.shape)
        _preallocate(tmp)
        for start in range(0, len(src), _CHUNK):
            out[start : start + _CHUNK] = src[start : start + _CHUNK, :, ::-1]
        out.flush()
        del out
