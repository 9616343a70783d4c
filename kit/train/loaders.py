"""Where a run's pictures come from: the data folder (or fixture), the split, the loaders.

Shuffling and augmentation are re-seeded from ``(seed, epoch)`` at every epoch start, so an
epoch's batches do not depend on what ran before it: a resumed run sees the same batches as an
uninterrupted one.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Sampler, WeightedRandomSampler

from kit.data import make_fixture, read_eval, read_train, verify_images
from kit.splits import holdout, person_folds
from kit.train.sampling import SeededDataset, SeededSampler, ShardSampler

__all__ = ["SAMPLERS", "Splits", "epoch_seed", "load_splits", "resolve_data_dir", "train_loader"]

_log = logging.getLogger("kit")
#: (folder, people, picture size (W, H)) of the fixture used when ``data_dir`` is None.
FIXTURE = (Path("data/fixture"), 60, (96, 128))
SMOKE_FIXTURE = (Path("data/fixture-smoke"), 12, (48, 64))


@dataclass
class Splits:
    """The frames of one run: training rows, validation rows, and the eval set if any."""

    data_dir: Path
    train: pd.DataFrame
    val: pd.DataFrame
    eval: pd.DataFrame | None
    fold: int  # fold id written to val_probs.csv; -1 for a holdout split


def resolve_data_dir(cfg: Any) -> Path:
    """``cfg.data_dir``, or the fixture (built once under ``data/``, relative to the cwd)."""
    if cfg.data_dir is not None:
        return Path(cfg.data_dir).expanduser()
    root, people, size = SMOKE_FIXTURE if cfg.smoke else FIXTURE
    if not (root / "train" / "train.csv").is_file():
        _build_fixture(root, people, size)
    return root


def _build_fixture(root: Path, people: int, size: tuple[int, int]) -> None:
    """Build beside ``root`` and rename into place, so parallel runs never see half of one."""
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
        is_val, fold = holdout(df, val_ratio=cfg.val_ratio, seed=cfg.seed), -1
    else:
        is_val, fold = person_folds(df, n_splits=cfg.n_folds, seed=cfg.seed) == cfg.fold, cfg.fold
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
    test = verify_images(read_eval(data_dir)) if has_eval else None
    return Splits(data_dir, train, val, test, fold)


def _plain(labels: np.ndarray, generator: torch.Generator) -> Sampler | None:
    return None  # the loader shuffles with its own generator


def _balanced(labels: np.ndarray, generator: torch.Generator) -> Sampler:
    counts = np.bincount(labels, minlength=int(labels.max()) + 1)
    weights = 1.0 / counts[labels]
    return WeightedRandomSampler(
        torch.as_tensor(weights, dtype=torch.double), len(labels), True, generator=generator
    )


#: sampler name -> builder(training labels, generator) (None means plain shuffling).
SAMPLERS: dict[str, Callable[[np.ndarray, torch.Generator], Sampler | None]] = {
    "plain": _plain,
    "balanced": _balanced,
}


def epoch_seed(seed: int, epoch: int) -> int:
    """A 31-bit seed for one epoch of a run."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0] >> 1)


def resolve_workers(workers: int | str) -> int:
    """``auto``: one core for the training process, the others (up to 8) load pictures; none
    on one or two cores, where a worker process slows the training process's compute threads
    more than it helps (``python -m kit.bench``, docs/benchmarks.md)."""
    if workers != "auto":
        return int(workers)
    cores = usable_cores()
    return 0 if cores <= 2 else min(8, cores - 1)


def usable_cores() -> int:
    """The CPU cores this process may run on (a container's share, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32  # differs per worker, fixed by the loader's generator
    np.random.seed(seed)
    info = torch.utils.data.get_worker_info()
    transform = getattr(info.dataset, "transform", None) if info else None
    if hasattr(transform, "set_random_seed"):
        transform.set_random_seed(seed)


def train_loader(
    dataset: Any, cfg: Any, generator: torch.Generator, rank: int = 0, world_size: int = 1
) -> DataLoader:
    """The training loader; re-seed ``generator`` before each epoch for repeatable batches.

    Each sample carries its own augmentation seed (:mod:`kit.train.sampling`), so the batches
    do not depend on the number of workers; with ``world_size`` > 1 this process (``rank``)
    gets its share of every epoch.
    """
    sampler = SAMPLERS[cfg.sampler](np.asarray(dataset.targets), generator)
    sampler = SeededSampler(sampler, len(dataset), generator)
    if world_size > 1:
        sampler = ShardSampler(sampler, rank, world_size)
    workers = resolve_workers(cfg.workers)
    return DataLoader(
        SeededDataset(dataset),
        batch_size=cfg.batch_size,
        sampler=sampler,
        # a private generator for the workers' base seed: the loader draws it once with
        # persistent workers but every epoch without, which must not move any other RNG
        generator=torch.Generator().manual_seed(cfg.seed),
        num_workers=workers,
        worker_init_fn=_seed_worker if workers else None,
        persistent_workers=workers > 0,
        pin_memory=torch.cuda.is_available(),
        drop_last=len(sampler) > cfg.batch_size,
    )
