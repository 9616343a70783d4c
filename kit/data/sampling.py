"""How training batches are drawn: the samplers ``cfg.sampler`` names, per-sample augmentation
seeds, process shards, and the training DataLoader.

Every sample of an epoch carries its own augmentation seed (the epoch's generator and its
position), so it is augmented alike whichever process prepares it: the number of workers and of
training processes changes no picture. Re-seeding the generator with :func:`epoch_seed` at each
epoch start makes a resumed run see the same batches as an uninterrupted one.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence, Sized
from functools import partial
from typing import Any

import numpy as np
import torch
from albumentations.core.composition import BaseCompose
from torch.utils.data import DataLoader, Dataset, Sampler, WeightedRandomSampler

from kit.data._common import usable_cores
from kit.data.dataset import collate_pictures
from kit.registry import Registry
from kit.transforms import draws_numbers

__all__ = [
    "SAMPLERS",
    "SeededDataset",
    "SeededSampler",
    "ShardSampler",
    "close_workers",
    "epoch_seed",
    "resolve_workers",
    "seed_transform",
    "train_loader",
    "usable_cores",
]


class SeededSampler(Sampler):
    """``(index, seed)`` pairs: the indices of ``sampler`` (None: ``range(n)`` shuffled by
    ``generator``), each with its augmentation seed."""

    def __init__(self, sampler: Sampler | None, n: int, generator: torch.Generator) -> None:
        self.sampler, self.n, self.generator = sampler, n, generator

    def __len__(self) -> int:
        return len(self.sampler) if isinstance(self.sampler, Sized) else self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        # drawn before the order, so re-seeding the generator fixes both
        base = int(torch.randint(0, 2**31, (1,), generator=self.generator))
        if self.sampler is None:
            order = torch.randperm(self.n, generator=self.generator).tolist()
        else:
            order = list(self.sampler)
        for pos, index in enumerate(order):
            yield int(index), (base + pos) % 2**32


class ShardSampler(Sampler):
    """This process's share of any ``sampler`` by ``DistributedSampler``'s rule (pad the epoch
    by repeating its start, take every ``world_size``-th item from ``rank``). Every rank must
    draw the same epoch (the same seeded generator)."""

    def __init__(self, sampler: Sampler, rank: int, world_size: int) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in 0..{world_size - 1}, got {rank}")
        self.sampler, self.rank, self.world_size = sampler, rank, world_size

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.world_size)

    def __iter__(self) -> Iterator[Any]:
        items = list(self.sampler)
        total = len(self) * self.world_size
        while items and len(items) < total:
            items += items[: total - len(items)]
        return iter(items[self.rank : total : self.world_size])


class SeededDataset(Dataset):
    """``dataset[i]`` for a key ``(i, seed)``, its transform (and a loader that draws, like
    :class:`FlipChoice`) seeded by ``seed`` first. A batch of keys reads its pictures in one
    call (``ImageDataset.read``); a transform of fixed steps only is not re-seeded."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self.targets = getattr(dataset, "targets", None)
        transform = getattr(dataset, "transform", None)
        self._transform = transform if draws_numbers(transform) else None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: Sequence[tuple[int, int]]) -> list[Any]:
        indices, seeds = [int(i) for i, _ in keys], [int(s) for _, s in keys]
        if not hasattr(self.dataset, "read"):  # a dataset of one's own: one sample at a time
            return [
                self._seeded(self.dataset.__getitem__, i, s)
                for i, s in zip(indices, seeds, strict=True)
            ]
        pictures = self.dataset.read(indices, seeds)
        return [
            self._seeded(partial(self.dataset.sample, image=image), i, s)
            for i, s, image in zip(indices, seeds, pictures, strict=True)
        ]

    def _seeded(self, make: Callable[[int], Any], index: int, seed: int) -> Any:
        if self._transform is not None:
            seed_transform(self._transform, seed)
        loader = getattr(self.dataset, "loader", None)
        if not hasattr(self.dataset, "read") and hasattr(loader, "set_random_seed"):
            loader.set_random_seed(seed)
        return make(index)


def seed_transform(transform: Any, seed: int) -> None:
    """Seed ``transform`` for one sample: an albumentations pipeline gets one numpy and one
    Python generator shared by all its steps (``set_random_seed`` would give every step a copy
    of one stream, so two steps of p=0.5 would always fire together); anything else gets
    ``set_random_seed(seed)``."""
    if isinstance(transform, BaseCompose):
        transform.set_random_state(np.random.default_rng(seed), random.Random(seed))
    elif hasattr(transform, "set_random_seed"):
        transform.set_random_seed(seed)


#: sampler name -> builder(training labels, generator); None means plain shuffling.
SAMPLERS: Registry[Callable[[np.ndarray, torch.Generator], Sampler | None]] = Registry("sampler")


@SAMPLERS.register("plain")
def _plain(labels: np.ndarray, generator: torch.Generator) -> Sampler | None:
    return None  # SeededSampler shuffles with the epoch's generator


@SAMPLERS.register("balanced")
def _balanced(labels: np.ndarray, generator: torch.Generator) -> Sampler:
    weights = 1.0 / np.bincount(labels, minlength=int(labels.max()) + 1)[labels]
    return WeightedRandomSampler(
        torch.as_tensor(weights, dtype=torch.double), len(labels), True, generator=generator
    )


def epoch_seed(seed: int, epoch: int) -> int:
    """A 31-bit seed for one epoch of a run."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0] >> 1)


def resolve_workers(workers: int | str, processes: int = 1) -> int:
    """``auto``: of this process's share of the cores (``processes`` split them), one trains and
    every other one loads pictures; none on one or two cores, where a worker slows training
    more than it helps. No cap: a fast GPU may need every core (docs/benchmarks.md)."""
    if workers != "auto":
        return int(workers)
    cores = usable_cores() // max(1, processes)
    return 0 if cores <= 2 else cores - 1


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
    """The training loader of an ``ImageDataset``; re-seed ``generator`` before each epoch for
    repeatable batches. With ``world_size`` > 1, process ``rank`` gets its share."""
    with SAMPLERS.calling(cfg.sampler, on=f"the {len(dataset.targets)} training labels"):
        sampler = SAMPLERS.get(cfg.sampler)(np.asarray(dataset.targets), generator)
    sampler = SeededSampler(sampler, len(dataset), generator)
    if world_size > 1:
        sampler = ShardSampler(sampler, rank, world_size)
    workers = resolve_workers(cfg.workers, world_size)
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
        collate_fn=collate_pictures,
        drop_last=len(sampler) > cfg.batch_size,
    )


def close_workers(loader: DataLoader) -> None:
    """End ``loader``'s persistent worker processes now (a no-op without workers).

    torch ends them only when the loader is garbage collected (there is no public close): a
    loader in a reference cycle keeps its workers and their memory until a later collection,
    which then waits up to 5 s for each (its queues may be finalized first).
    """
    workers = getattr(loader, "_iterator", None)
    if workers is not None:
        loader._iterator = None
        workers._shutdown_workers()
