"""Writing an image cache: the build lock, leftover clean-up, parallel decode into a memmap."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from kit.io import OutputError, atomic_path
from kit.progress import Progress
from kit.registry import Registry

try:
    import fcntl
except ImportError:  # Windows: builds of one key are then not serialised
    fcntl = None  # type: ignore[assignment]

__all__ = ["EXECUTORS", "build_lock", "clean_leftovers", "write_flips", "write_images"]

#: ``build_cache(executor=...)`` name -> pool. Threads suit PIL / OpenCV loaders (they release
#: the GIL while decoding and resizing) and take any callable; processes need a picklable load.
EXECUTORS: Registry[type[Executor]] = Registry("executor")
EXECUTORS.register("thread", ThreadPoolExecutor)
EXECUTORS.register("process", ProcessPoolExecutor)

_CHUNK = 256  # rows copied per step when writing flips: bounded memory, few calls


@contextlib.contextmanager
def build_lock(root: Path, key: str) -> Iterator[None]:
    """Hold an exclusive lock on ``root/.<key>.lock`` (released by the OS even on SIGKILL)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / f".{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise OutputError(
            err.errno or 0,
            f"cannot write the image cache in {root}: {err.strerror or err}. Nothing was cached; "
            f"choose a writable cache folder, or train without the cache (--no-cache).",
        ) from err
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def clean_leftovers(root: Path, key: str) -> None:
    """Delete temporary files of earlier, interrupted builds of ``key`` (call under the lock:
    holding it proves no live build owns them)."""
    for name in (f"{key}.npy", f"{key}_flip.npy", f"{key}.json"):
        for tmp in root.glob(f".{name}.*.tmp"):  # kit.io.atomic_path's temporary names
            tmp.unlink(missing_ok=True)


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
    with EXECUTORS.get(executor)(max_workers=workers) as pool:
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
        with atomic_path(target) as tmp, bar, _mapper(workers, executor) as imap:
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
    with atomic_path(target) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=src.shape)
        _preallocate(tmp)
        for start in range(0, len(src), _CHUNK):
            out[start : start + _CHUNK] = src[start : start + _CHUNK, :, ::-1]
        out.flush()
        del out
