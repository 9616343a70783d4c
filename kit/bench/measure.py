"""The benchmark's measuring (torch): ``run_benchmark`` runs every phase in one process.

The sources of batches: ``limit`` (one batch in memory, again and again), ``cached`` and
``files`` (kit's training loader reading the picture cache, or decoding every file), and
``plain`` (a per-sample pipeline like the official baseline's, :class:`PlainDataset`).

Peak memory and CPU time cover the process and its DataLoader workers. The kernel's own peak
(``VmHWM``) never goes down, so a thread samples the summed PSS (shared pages split between
their processes: the memory-mapped cache and forked workers count once) of the process tree
every ``interval`` seconds and keeps the largest; without ``/proc`` it reports None
(docs/benchmarks.md).
"""

from __future__ import annotations

import gc
import itertools
import os
import platform
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T

from kit.bench import PHASES, TARGETS, BenchOptions
from kit.config import Config
from kit.data import read_train
from kit.data._common import usable_cores
from kit.data.dataset import ImageDataset, load_rgb
from kit.data.fixture import make_fixture
from kit.data.image_cache import ImageCache
from kit.data.pictures import build_run_cache
from kit.data.sampling import close_workers, resolve_workers, train_loader
from kit.device import cpu_info, resolve_device
from kit.losses import build_criterion
from kit.models import create_model
from kit.optim import build_parts
from kit.train.distributed import SINGLE, prepare_model, training_module
from kit.train.loop import train_one_epoch
from kit.transforms import MEAN, STD, build_transforms

__all__ = [
    "PeakMemory",
    "PlainDataset",
    "StepClock",
    "ensure_fixture",
    "kit_loader",
    "limit_batches",
    "machine_info",
    "plain_loader",
    "run_benchmark",
    "sample_rows",
    "sweep_workers",
    "sync",
    "time_data",
    "time_train",
    "tree_cpu_seconds",
    "tree_pss_bytes",
]

_PROC = Path("/proc")


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in (_PROC / str(pid) / "task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue  # the thread or process ended while we looked
    return out


def _pss_bytes(pid: int) -> int:
    """PSS of one process (``smaps_rollup``; RSS from ``status`` on kernels without it)."""
    base = _PROC / str(pid)
    for name, field in (("smaps_rollup", "Pss:"), ("status", "VmRSS:")):
        try:
            for line in (base / name).read_text().splitlines():
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return 0


def tree_pss_bytes(pid: int | None = None) -> int | None:
    """PSS of process ``pid`` (default: this one) plus all its descendants; None without /proc."""
    root = os.getpid() if pid is None else pid
    if not (_PROC / str(root)).is_dir():
        return None
    return sum(_pss_bytes(p) for p in _descendants(root))


def _descendants(root: int) -> list[int]:
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if p not in out:
            out.append(p)
            todo += _children(p)
    return out


def _cpu_ticks(pid: int) -> int:
    try:  # utime and stime, fields 14 and 15 of /proc/<pid>/stat, after the ")" of the name
        fields = (_PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return 0  # the process ended while we looked


def tree_cpu_seconds() -> float:
    """CPU seconds used so far by this process (``time.process_time``) and its descendants (its
    DataLoader workers, from ``/proc`` in 10 ms ticks; none counted without ``/proc``)."""
    me = os.getpid()
    if not (_PROC / str(me)).is_dir():
        return time.process_time()
    ticks = sum(_cpu_ticks(p) for p in _descendants(me) if p != me)
    return time.process_time() + ticks / os.sysconf("SC_CLK_TCK")


class PeakMemory:
    """``with PeakMemory() as mem: ...`` then ``mem.peak_mib`` (None when not measurable)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.start_bytes: int | None = None
        self.peak_bytes: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def _sample(self) -> None:
        now = tree_pss_bytes()
        if now is not None:
            self.peak_bytes = now if self.peak_bytes is None else max(self.peak_bytes, now)

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> PeakMemory:
        self.start_bytes = tree_pss_bytes()
        self.peak_bytes = self.start_bytes
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    @property
    def peak_mib(self) -> float | None:
        return _mib(self.peak_bytes)

    @property
    def start_mib(self) -> float | None:
        return _mib(self.start_bytes)


def _mib(n: int | None) -> float | None:
    return None if n is None else round(n / 2**20, 1)


def ensure_fixture(people: int, size: tuple[int, int], root: Path = Path("data")) -> Path:
    """``data/bench-<H>x<W>-<people>``: a training set of synthetic pictures of ``size``
    (height, width), built once."""
    folder = root / f"bench-{size[0]}x{size[1]}-{people}"
    if not (folder / "train" / "train.csv").is_file():
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        make_fixture(tmp, n_people=people, image_size=size, seed=0, n_eval_people=0)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process built it first
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def machine_info(device: torch.device) -> dict[str, Any]:
    """Cores, CPU model, torch version, device: what the figures depend on."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "cores": usable_cores(),
        "cpu": cpu_info()["cpu"],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "device": str(device),
        "gpu": gpu,
    }


class PlainDataset(Dataset):
    """The official baseline's per-sample path: PIL open, Resize, ToTensor, Normalize."""

    def __init__(self, df: pd.DataFrame, image_size: tuple[int, int]) -> None:
        self.paths = df["path"].astype(str).tolist()
        self.labels = df["label"].astype(int).tolist()
        resize = T.Resize(tuple(image_size), T.InterpolationMode.BILINEAR)
        self.transform = T.Compose([resize, T.ToTensor(), T.Normalize(mean=MEAN, std=STD)])

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


#: The options that are Config fields of the same name.
_CONFIG_FIELDS = ("model", "batch_size", "workers", "device", "amp", "amp_dtype", "seed")
_CONFIG_FIELDS += ("channels_last", "compile", "preset", "device_aug")


def _config(opts: BenchOptions) -> Config:
    same = {name: getattr(opts, name) for name in _CONFIG_FIELDS}
    return Config(
        **same, image_size=tuple(opts.image_size), epochs=1, warmup_epochs=0.0, quiet=True
    ).validate()


def sample_rows(df: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """``rows`` rows of ``df``: a random sample, or ``df`` repeated when it is too small."""
    if len(df) >= rows:
        return df.sample(rows, random_state=seed).reset_index(drop=True)
    return pd.concat([df] * (rows // len(df) + 1)).iloc[:rows].reset_index(drop=True)


def _run_phase(
    kind: str, make: Callable[[], Any], cfg: Config, device: torch.device, opts: BenchOptions
) -> tuple[float, float | None]:
    batches = make()
    try:
        if kind == "train":
            return time_train(batches, cfg, device, opts.steps, opts.warmup), None
        return time_data(batches, opts.steps, opts.warmup)
    finally:
        if isinstance(batches, DataLoader):
            close_workers(batches)  # a loader's workers end with its phase


#: One repeat: seconds, CPU seconds (data phases) and the phase's memory.
Repeat = tuple[float, float | None, PeakMemory]


def _measure(run: Callable[[], tuple[float, float | None]]) -> Repeat:
    with PeakMemory() as mem:
        seconds, cpu = run()
        gc.collect()  # let the phase's batches go before the next phase
    return seconds, cpu, mem


def _rate(images: int, seconds: float) -> float | None:
    return round(images / seconds, 2) if seconds > 0 else None


def _summary(label: str, images: int, runs: list[Repeat]) -> dict[str, Any]:
    """The median repeat, and the spread: the fastest and the slowest; for the data side, the
    median pictures per CPU-second (of this process and its workers: what one core delivers)."""
    times = [s for s, _, _ in runs]
    seconds = float(statistics.median(times))
    peaks = [m.peak_mib for _, _, m in runs if m.peak_mib is not None]
    cpus = [c for _, c, _ in runs if c is not None]
    return {
        "label": label,
        "images": images,
        "seconds": round(seconds, 6),
        "images_per_s": _rate(images, seconds),
        "images_per_s_range": [_rate(images, max(times)), _rate(images, min(times))],
        "repeats_seconds": [round(s, 6) for s in times],
        "images_per_cpu_s": _rate(images, float(statistics.median(cpus))) if cpus else None,
        "peak_mib": max(peaks) if peaks else None,
        "start_mib": runs[0][2].start_mib,
    }


def run_benchmark(opts: BenchOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Measure every phase of :data:`PHASES`; return settings, machine, phases and ratios."""
    cfg = _config(opts)
    device = resolve_device(cfg.device)
    if opts.threads is not None:
        torch.set_num_threads(opts.threads)
    if opts.data_dir:
        data_dir = Path(opts.data_dir).expanduser()
    else:
        data_dir = ensure_fixture(opts.people, opts.fixture_size)
    total = opts.warmup + opts.steps
    # every picture of the data set, shuffled: batches come from all of it, not a few
    whole = read_train(data_dir)
    df = sample_rows(whole, max(len(whole), total * opts.batch_size), opts.seed)
    images = opts.steps * opts.batch_size
    with tempfile.TemporaryDirectory(prefix="kit-bench-cache-") as tmp:
        paths = sorted(set(df["path"].astype(str)))
        start = time.perf_counter()
        cache = build_run_cache(cfg, paths, tmp, progress=False)
        built = time.perf_counter() - start
        log(f"cache: {len(paths)} pictures prepared in {built:.1f} s")
        sources: dict[str, Callable[[], Any]] = {
            "limit": partial(limit_batches, df, cfg, cache),
            "cached": partial(kit_loader, df, cfg, cache),
            "files": partial(kit_loader, df, cfg, None),
            "plain": partial(plain_loader, df, cfg),
        }
        # the baseline's batches come normalised and train unaugmented, whatever --device-aug
        plain_cfg = cfg.replace(device_aug="none")
        keys = [] if opts.data_only else list(PHASES)
        runs: dict[str, list[Repeat]] = {key: [] for key in keys}
        for repeat in range(1, opts.repeats + 1):  # round robin: a busy spell hits every phase
            for key in keys:
                kind, source = key.split("_")
                log(f"measuring {PHASES[key]} (repeat {repeat}/{opts.repeats}) ...")
                at = plain_cfg if source == "plain" else cfg
                runs[key].append(
                    _measure(partial(_run_phase, kind, sources[source], at, device, opts))
                )
        phases = {key: _summary(PHASES[key], images, runs[key]) for key in keys}
        sweep = _worker_sweep(df, cfg, cache, opts, images, log)
        sources.clear()  # the cache's memory maps close before its folder goes
    return {
        "settings": {**asdict(opts), "workers_resolved": resolve_workers(cfg.workers)},
        "machine": machine_info(device),
        "data_dir": str(data_dir),
        "cache_build": {"pictures": len(paths), "seconds": round(built, 3)},
        "memory_method": "peak PSS of this process and its DataLoader workers, sampled every 50 ms",
        "phases": phases,
        "data_workers": sweep,
        "ratios": _ratios(phases),
    }


def sweep_workers(cores: int) -> tuple[int, ...]:
    """0, 1, 2, 4, ... workers, up to ``cores``."""
    counts, n = [0], 1
    while n <= cores:
        counts.append(n)
        n *= 2
    return tuple(sorted({*counts, cores}))


def _worker_sweep(
    df: pd.DataFrame,
    cfg: Config,
    cache: Any,
    opts: BenchOptions,
    images: int,
    log: Callable[[str], None],
) -> dict[str, dict[str, Any]]:
    """The cached loader alone at each worker count: how many workers feed a given GPU."""
    counts = opts.data_workers or sweep_workers(usable_cores())
    out = {}
    for w in counts:
        at = cfg.replace(workers=w)
        make = partial(kit_loader, df, at, cache)
        runs = []
        for repeat in range(1, opts.repeats + 1):
            log(f"measuring data only, with the cache, {w} workers ({repeat}/{opts.repeats}) ...")
            cpu = torch.device("cpu")
            runs.append(_measure(partial(_run_phase, "data", make, at, cpu, opts)))
        out[str(w)] = _summary(f"data only: (b) with the cache, {w} workers", images, runs)
    return out


def _ratios(phases: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, (top, bottom, target) in TARGETS.items():
        if top not in phases or bottom not in phases:
            continue  # --data-only
        a, b = phases[top]["images_per_s"], phases[bottom]["images_per_s"]
        value = round(a / b, 3) if a and b else None
        met = None if target is None or value is None else value >= target
        out[name] = {"value": value, "target": target, "met": met}
    return out
