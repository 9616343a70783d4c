"""Per-sample augmentation seeds and process shards of a training epoch.

Every sample of an epoch carries its own augmentation seed, drawn from the epoch's generator
and its position in the epoch. A sample is therefore augmented the same way whichever process
(the main one, any DataLoader worker, any distributed rank) prepares it: the number of workers
and of training processes changes no picture.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler

__all__ = ["SeededDataset", "SeededSampler", "ShardSampler"]


class SeededSampler(Sampler):
    """``(index, seed)`` pairs: the indices of ``sampler`` (or ``range(n)`` shuffled by
    ``generator`` when it is None), each with a seed for that sample's augmentation."""

    def __init__(self, sampler: Sampler | None, n: int, generator: torch.Generator) -> None:
        self.sampler = sampler
        self.n = n
        self.generator = generator

    def __len__(self) -> int:
        return len(self.sampler) if isinstance(self.sampler, Sized) else self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        # One draw from the epoch's generator, before the order is drawn: re-seeding the
        # generator (kit does at each epoch start) fixes both.
        base = int(torch.randint(0, 2**31, (1,), generator=self.generator))
        if self.sampler is None:
            order = torch.randperm(self.n, generator=self.generator).tolist()
        else:
            order = list(self.sampler)
        for pos, index in enumerate(order):
            yield int(index), (base + pos) % 2**32


class ShardSampler(Sampler):
    """This process's share of ``sampler``: the rule of ``DistributedSampler`` (pad the epoch
    by repeating its start to a multiple of ``world_size``, take every ``world_size``-th item
    from ``rank``) applied to any sampler, so balanced sampling works on several processes too.
    Every rank must draw the same epoch (the same seeded generator)."""

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
    """``dataset[i]`` for a key ``(i, seed)``, with the dataset's transform (and its loader,
    if it draws random numbers, like the cache's flip choice) seeded by ``seed`` first."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self.targets = getattr(dataset, "targets", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        for name in ("transform", "loader"):
            part = getattr(self.dataset, name, None)
            if hasattr(part, "set_random_seed"):
                part.set_random_seed(seed)
        return self.dataset[index]
