"""The benchmark's sources of batches and its two timed loops (train steps; data alone).

Every source yields ``(images, targets)`` batches of one size for one model:

- ``limit``: one batch already in memory, again and again (the model's compute alone);
- ``kit_cached``, ``kit_files``: kit's own training loader (``train_loader``) over an
  ``ImageDataset`` reading the picture cache, or decoding every file;
- ``plain``: a per-sample pipeline like the competition's official baseline: a torch Dataset
  that opens each full-size JPEG with PIL and applies torchvision ``Resize``, ``ToTensor`` and
  ``Normalize``, in a plain shuffling DataLoader.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from kit.bench.memory import tree_cpu_seconds
from kit.config import Config
from kit.data.cache import ImageCache
from kit.data.dataset import ImageDataset, load_rgb
from kit.data.sampling import resolve_workers, train_loader
from kit.losses import build_criterion
from kit.models import create_model
from kit.optim import build_parts
from kit.train.distributed import SINGLE, prepare_model, training_module
from kit.train.loop import train_one_epoch
from kit.transforms import MEAN, STD, build_transforms

__all__ = ["PlainDataset", "StepClock", "kit_loader", "limit_batches", "plain_loader", "sync"]
__all__ += ["time_data", "time_train"]


class PlainDataset(Dataset):
    """The official baseline's per-sample path: PIL open, Resize, ToTensor, Normalize."""

    def __init__(self, df: pd.DataFrame, image_size: tuple[int, int]) -> None:
        self.paths = df["path"].astype(str).tolist()
        self.labels = df["label"].astype(int).tolist()
        self.transform = T.Compose(
            [
                T.Resize(tuple(image_size), T.InterpolationMode.BILINEAR),
                T.ToTensor(),
                T.Normalize(mean=MEAN, std=STD),
            ]
        )

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = Image.open(self.paths[i])
        return self.transform(image), self.labels[i]


def plain_loader(df: pd.DataFrame, cfg: Config) -> DataLoader:
    """The baseline's loader: shuffling, the same batch size and worker count as kit's."""
    return DataLoader(
        PlainDataset(df, cfg.image_size),
        batch_size=cfg.batch_size,
        shuffle=True,
        num_workers=resolve_workers(cfg.workers),
        pin_memory=torch.cuda.is_available(),
        drop_last=True,
        generator=torch.Generator().manual_seed(cfg.seed),
    )


def kit_loader(df: pd.DataFrame, cfg: Config, cache: ImageCache | None) -> DataLoader:
    """kit's training loader over ``df``, reading ``cache`` (or decoding the files if None)."""
    train_tf, _ = build_transforms(cfg, prepared=cache is not None, tensor=False)
    dataset = ImageDataset(df, train_tf, "label", loader=load_rgb if cache is None else cache)
    return train_loader(dataset, cfg, torch.Generator().manual_seed(cfg.seed))


def limit_batches(df: pd.DataFrame, cfg: Config, cache: ImageCache) -> Iterator[Any]:
    """One real batch (from the cache, uint8 like the loader's), repeated forever: no data work
    at all, but the same copy to the device and normalisation there."""
    _, eval_tf = build_transforms(cfg, prepared=True, tensor=False)
    dataset = ImageDataset(df.iloc[: cfg.batch_size], eval_tf, "label", loader=cache)
    images, targets = next(iter(DataLoader(dataset, batch_size=cfg.batch_size)))
    if torch.cuda.is_available():  # like the loader's batches: the copy to the GPU is timed too
        images, targets = images.pin_memory(), targets.pin_memory()
    return itertools.repeat((images, targets))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class StepClock:
    """``total`` batches of ``batches``; notes the time at which batch ``warmup`` is asked for,
    so that worker start-up and first-step allocations stay out of the measurement."""

    def __init__(self, batches: Iterable[Any], total: int, warmup: int, device: torch.device):
        self.batches, self.total, self.warmup, self.device = batches, total, warmup, device
        self.started = 0.0

    def __len__(self) -> int:
        return self.total

    def __iter__(self) -> Iterator[Any]:
        source = iter(self.batches)
        for i in range(self.total):
            if i == self.warmup:
                sync(self.device)
                self.started = time.perf_counter()
            yield next(source)


def time_train(
    batches: Iterable[Any], cfg: Config, device: torch.device, steps: int, warmup: int
) -> float:
    """Seconds for ``steps`` kit training steps (``train_one_epoch``) after ``warmup`` ones."""
    torch.manual_seed(cfg.seed)
    model = prepare_model(create_model(cfg).to(device), cfg)
    parts = build_parts(cfg, model, warmup + steps, device)
    parts.module = training_module(model, cfg, SINGLE, device)
    clock = StepClock(batches, warmup + steps, warmup, device)
    train_one_epoch(parts, clock, build_criterion(cfg).to(device), cfg, epoch=1)
    sync(device)
    return time.perf_counter() - clock.started


def time_data(batches: Iterable[Any], steps: int, warmup: int) -> tuple[float, float]:
    """Seconds, and CPU seconds of this process and its loader workers, to draw ``steps``
    batches after ``warmup`` ones, with no model at all."""
    source = iter(batches)
    for _ in range(warmup):
        next(source)
    start, cpu = time.perf_counter(), tree_cpu_seconds()
    for _ in range(steps):
        next(source)
    return time.perf_counter() - start, tree_cpu_seconds() - cpu
