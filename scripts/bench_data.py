"""The data side of training per CPU-second, side by side: sizes x presets x cached or not.

    python scripts/bench_data.py                     # 224 and 380, base and strong
    python scripts/bench_data.py --sizes 224 --people 60 --batches 5 --repeats 1

In one process, with no model and no DataLoader workers (``workers=0``), it draws kit's own
training batches (``kit.data.sampling.train_loader`` over an ``ImageDataset``: the per-sample
seeding, the preset's augmentations, normalisation, collation) from the picture cache and
from the JPEG files, and times them in CPU seconds of this process (``time.process_time``),
so that other work on a shared machine cancels out. It also times the cache build (decoding,
cropping and resizing every picture on every core) in CPU seconds of all its threads. A
worker process does the same work, so N workers deliver about N times the per-CPU-second
figure when N free cores are there.

Where to augment: with both ``base`` and ``strong`` measured it also prints, per size, the
milliseconds per picture of ``--preset strong`` (augmented per picture on the loader's CPU) beside
``--preset base --device-aug strong`` (the loader's share, then ``kit.to_model_input`` with the
batch augmentation of ``kit.create_device_aug`` on ``--device``: wall time after synchronising on
a GPU, CPU seconds of this process on the CPU), and the device's normalisation alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Sequence

import torch

from kit.batch import create_device_aug, to_model_input
from kit.bench.measure import ensure_fixture, kit_loader, machine_info
from kit.config import Config
from kit.data import read_train
from kit.data._common import usable_cores
from kit.data.pictures import build_run_cache
from kit.transforms import normalization


def _load() -> str:
    try:
        return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "load average n/a"


def _epochs(loader):
    while True:  # a small data set: as many epochs as the measurement needs
        yield from loader


def _draw(loader, batches: int) -> tuple[int, float]:
    """Pictures drawn and CPU seconds for ``batches`` batches after one untimed batch."""
    it = _epochs(loader)
    next(it)
    start, n = time.process_time(), 0
    for _ in range(batches):
        images, _ = next(it)
        n += len(images)
    return n, time.process_time() - start


def _rate(df, cfg: Config, cache, batches: int, repeats: int) -> list[float]:
    rates = []
    for _ in range(repeats):
        n, cpu = _draw(kit_loader(df, cfg, cache), batches)
        rates.append(n / cpu)
    return rates


def _device_ms(
    images, cfg: Config, device: torch.device, batches: int, repeats: int
) -> list[float]:
    """Milliseconds per picture of ``to_model_input`` with ``cfg``'s device augmentation on
    ``device``: wall time after synchronising on a GPU, CPU time of this process on the CPU."""
    gpu = device.type == "cuda"
    clock, augment = (time.perf_counter if gpu else time.process_time), create_device_aug(cfg)
    norm = normalization(cfg)
    model_input = dict(
        mean=norm.mean, std=norm.std, channels_last=cfg.channels_last, augment=augment
    )
    images = images.pin_memory() if gpu else images
    torch.manual_seed(cfg.seed)
    times = []
    for _ in range(repeats):
        to_model_input(images, device, **model_input)  # untimed: first-call allocations
        if gpu:
            torch.cuda.synchronize(device)
        start = clock()
        for _ in range(batches):
            to_model_input(images, device, **model_input)
        if gpu:
            torch.cuda.synchronize(device)
        times.append((clock() - start) * 1000 / (batches * len(images)))
    return times


def _where_to_augment(size, cfg, rates, batch, device, args) -> None:
    """``--preset strong`` on the loader vs ``--preset base`` + ``--device-aug strong``."""
    ms = {preset: 1000 / statistics.median(rates[preset]) for preset in ("base", "strong")}
    norm = statistics.median(_device_ms(batch, cfg, device, args.batches, args.repeats))
    aug_cfg = cfg.replace(device_aug=args.device_aug)
    aug = _device_ms(batch, aug_cfg, device, args.batches, args.repeats)
    span = f"({min(aug):.3f}-{max(aug):.3f})"
    rows = [
        ("--preset strong", ms["strong"], f"{norm:.3f}", ms["strong"] + norm),
        (
            f"--preset base --device-aug {args.device_aug}",
            ms["base"],
            f"{statistics.median(aug):.3f} {span}",
            ms["base"] + statistics.median(aug),
        ),
    ]
    for name, loader, on_device, total in rows:
        print(f"{size:>5} {name:<36} {loader:>10.3f} {on_device:>24} {total:>8.3f}")


def _cell(rates: list[float]) -> str:
    return f"{statistics.median(rates):7.0f} ({min(rates):.0f}-{max(rates):.0f})"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--people", type=int, default=300, help="fixture people (7 pictures each)")
    p.add_argument("--sizes", type=int, nargs="+", default=[224, 380], help="square sizes")
    p.add_argument("--presets", nargs="+", default=["base", "strong"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches", type=int, default=20, help="timed batches per measurement")
    p.add_argument("--repeats", type=int, default=3, help="median and range are printed")
    p.add_argument("--device-aug", default="strong", help="device augmentation to compare")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    data_dir = ensure_fixture(args.people, (384, 512))
    df = read_train(data_dir).sample(frac=1.0, random_state=0).reset_index(drop=True)
    paths = sorted(set(df["path"].astype(str)))
    info = machine_info(torch.device("cpu"))
    print(f"machine: {info['cores']} usable cores, {info['cpu']}, torch {info['torch']}, no GPU")
    print(
        f"data: {data_dir} ({len(paths)} JPEGs at 384x512), batch {args.batch_size}, "
        f"{args.batches} timed batches x {args.repeats} repeats, workers 0; {_load()}"
    )
    print()
    print(f"{'size':>5} {'preset':<7} {'cached pics/CPU-s':>24} {'uncached':>24} {'ratio':>6}")
    builds, compared = [], []
    with tempfile.TemporaryDirectory(prefix="kit-bench-data-") as tmp:
        for size in args.sizes:
            cfg = Config(image_size=(size, size), batch_size=args.batch_size, workers=0, seed=0)
            wall, cpu = time.perf_counter(), time.process_time()
            cache = build_run_cache(cfg, paths, tmp, progress=False)
            builds.append((size, time.process_time() - cpu, time.perf_counter() - wall))
            rates = {}
            for preset in args.presets:
                at = cfg.replace(preset=preset)
                cached = rates[preset] = _rate(df, at, cache, args.batches, args.repeats)
                files = _rate(df, at, None, args.batches, args.repeats)
                ratio = statistics.median(cached) / statistics.median(files)
                print(f"{size:>5} {preset:<7} {_cell(cached):>24} {_cell(files):>24} {ratio:6.2f}")
            if {"base", "strong"} <= set(rates):  # one uint8 batch as the base loader gives it
                batch = next(iter(kit_loader(df, cfg, cache)))[0]
                compared.append((size, cfg, rates, batch))
            del cache
    if compared:
        device = torch.device(args.device)
        where = "CPU seconds of this process" if device.type == "cpu" else "wall, synchronised"
        print()
        print(f"where to augment, ms per picture (cached loader; on the device: {device}, {where})")
        head = f"{'size':>5} {'settings':<36} {'loader CPU':>10} {'on the device':>24} {'total':>8}"
        print(head)
        for size, cfg, rates, batch in compared:
            _where_to_augment(size, cfg, rates, batch, device, args)
    print()
    for size, cpu, wall in builds:
        print(
            f"cache build at {size}x{size}: {len(paths)} pictures, {len(paths) / cpu:.0f} "
            f"pictures per CPU-second ({cpu:.1f} CPU-s, {wall:.1f} s wall on "
            f"{usable_cores()} threads)"
        )
    print(_load())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
