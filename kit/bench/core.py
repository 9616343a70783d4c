"""``run_benchmark``: every phase in one process, at one model, image size, batch and workers."""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from kit.bench.machine import ensure_fixture, machine_info
from kit.bench.memory import PeakMemory
from kit.bench.options import PHASES, TARGETS, BenchOptions
from kit.bench.phases import kit_loader, limit_batches, plain_loader, time_data, time_train
from kit.config import Config
from kit.data import read_train
from kit.data.pictures import build_run_cache
from kit.data.sampling import resolve_workers, usable_cores
from kit.device import resolve_device

__all__ = ["PHASES", "TARGETS", "BenchOptions", "run_benchmark", "sample_rows"]


def _config(opts: BenchOptions) -> Config:
    return Config(
        model=opts.model,
        image_size=tuple(opts.image_size),
        batch_size=opts.batch_size,
        workers=opts.workers,
        device=opts.device,
        amp=opts.amp,
        amp_dtype=opts.amp_dtype,
        channels_last=opts.channels_last,
        compile=opts.compile,
        preset=opts.preset,
        device_aug=opts.device_aug,
        seed=opts.seed,
        epochs=1,
        warmup_epochs=0.0,
        quiet=True,
    ).validate()


def sample_rows(df: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """``rows`` rows of ``df``: a random sample, or ``df`` repeated when it is too small."""
    if len(df) >= rows:
        return df.sample(rows, random_state=seed).reset_index(drop=True)
    return pd.concat([df] * (rows // len(df) + 1)).iloc[:rows].reset_index(drop=True)


def _run_phase(
    kind: str, make: Callable[[], Any], cfg: Config, device: torch.device, opts: BenchOptions
) -> tuple[float, float | None]:
    batches = make()  # dropped on return: a loader's workers end with the phase
    if kind == "train":
        return time_train(batches, cfg, device, opts.steps, opts.warmup), None
    return time_data(batches, opts.steps, opts.warmup)


#: One repeat: seconds, CPU seconds (data phases) and the phase's memory.
Repeat = tuple[float, float | None, PeakMemory]


def _measure(run: Callable[[], tuple[float, float | None]]) -> Repeat:
    with PeakMemory() as mem:
        seconds, cpu = run()
        gc.collect()  # let the phase's loader and its workers go before the next phase
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
        runs = []
        for repeat in range(1, opts.repeats + 1):
            log(f"measuring data only, with the cache, {w} workers ({repeat}/{opts.repeats}) ...")
            runs.append(
                _measure(
                    partial(
                        _run_phase,
                        "data",
                        partial(kit_loader, df, at, cache),
                        at,
                        torch.device("cpu"),
                        opts,
                    )
                )
            )
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
