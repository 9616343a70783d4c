"""``python -m kit.bench``: how close kit's data pipeline gets to the model's own speed
(docs/benchmarks.md): the :data:`PHASES` measured, their options and the printed table. The
measuring itself (torch) is ``kit.bench.measure``, so ``--help`` answers without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["PHASES", "TARGETS", "BenchOptions", "format_report", "run_benchmark"]

#: phase key -> label. "train_*" phases run kit's training step, "data_*" only the loader.
PHASES: dict[str, str] = {
    "train_limit": "(a) limit: train steps on a batch in memory",
    "train_cached": "(b) kit, with the cache",
    "train_files": "(c) kit, without the cache",
    "train_plain": "(d) plain per-sample baseline",
    "data_cached": "data only: (b) kit, with the cache",
    "data_files": "data only: (c) kit, without the cache",
    "data_plain": "data only: (d) plain baseline",
}
#: ratio name -> (numerator phase, denominator phase, target or None).
TARGETS: dict[str, tuple[str, str, float | None]] = {
    "b/a": ("train_cached", "train_limit", 0.90),
    "c/a": ("train_files", "train_limit", None),
    "d/a": ("train_plain", "train_limit", None),
    "data b/d": ("data_cached", "data_plain", 5.0),
    "data b/c": ("data_cached", "data_files", None),
}


@dataclass
class BenchOptions:
    """What to measure; ``data_dir`` None uses a synthetic fixture at the real size, 512x384."""

    data_dir: str | None = None
    # 300 people = 2,100 pictures: at 224x224 a 316 MB cache, 10x a large L3 cache, so reads
    # come from memory (or disk), as with the real 31,500 pictures
    people: int = 300
    fixture_size: tuple[int, int] = (512, 384)  # (height, width), like the real pictures
    model: str = "resnet10t"
    image_size: tuple[int, int] = (224, 224)
    batch_size: int = 32
    workers: int | str = "auto"
    steps: int = 10
    warmup: int = 2
    repeats: int = 3  # each phase's median is reported, with the fastest and slowest
    #: worker counts of the "data only, with the cache" sweep; None: 0, 1, 2, 4, ... up to
    #: the usable cores
    data_workers: tuple[int, ...] | None = None
    threads: int | None = None  # torch's compute threads; None keeps torch's default
    device: str = "auto"
    amp: bool = False
    amp_dtype: str = "auto"  # autocast dtype with amp (kit.device.AMP_DTYPES)
    channels_last: bool = False
    compile: bool = False
    preset: str = "base"
    device_aug: str = "none"  # training batches augmented on the device (kit.batch)
    seed: int = 0
    data_only: bool = False  # only the data side per worker count: no model, no baseline


# the printed table: images per second, share of the limit, peak memory
def _num(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _line(p: dict[str, Any], share: float | None) -> str:
    lo, hi = p.get("images_per_s_range") or (None, None)
    spread = f"{_num(lo, '.1f')}-{_num(hi, '.1f')}"
    return (
        f"{p['label']:<46} {_num(p['images_per_s'], '10.1f')} {spread:>15} "
        f"{_num(share, '8.2f')} {_num(p['peak_mib'], '9.0f')} "
        f"{_num(p.get('images_per_cpu_s'), '9.0f')}"
    )


def format_report(result: dict[str, Any]) -> str:
    """A plain-text table of ``run_benchmark``'s result, then the ratios and their targets."""
    s, m = result["settings"], result["machine"]
    height, width = s["image_size"]
    lines = [
        f"kit.bench: {s['model']} at {height}x{width}, batch {s['batch_size']}, "
        f"{s['workers_resolved']} workers ({s['workers']}), {s['steps']} timed steps after "
        f"{s['warmup']} (median of {s['repeats']} repeats), device {m['device']}, "
        f"amp {s['amp']}, channels_last {s['channels_last']}, preset {s.get('preset')}, "
        f"device_aug {s.get('device_aug', 'none')}",
        f"machine: {m['cores']} cores, {m['cpu']}, torch {m['torch']} "
        f"({m['torch_threads']} threads)" + (f", {m['gpu']}" if m["gpu"] else ""),
        f"data: {result['data_dir']}; cache of {result['cache_build']['pictures']} pictures "
        f"built in {result['cache_build']['seconds']:.1f} s",
        "",
        f"{'phase':<46} {'images/s':>10} {'min-max':>15} {'vs (a)':>8} {'peak MiB':>9} "
        f"{'per CPU-s':>9}",
    ]
    limit = result["phases"].get("train_limit", {}).get("images_per_s")
    for key, p in result["phases"].items():
        share = p["images_per_s"] / limit if key.startswith("train") and limit else None
        lines.append(_line(p, share))
    sweep = result.get("data_workers") or {}
    if sweep:
        lines += ["", "the data side alone, per worker count (no model at all):"]
        lines += [_line(p, None) for p in sweep.values()]
    lines.append("")
    for name, r in result["ratios"].items():
        verdict = ""
        if r["target"] is not None:
            verdict = f"  (target >= {r['target']:g}: {'met' if r['met'] else 'NOT met'})"
        lines.append(f"{name:<9} = {_num(r['value'], '.2f')}{verdict}")
    lines.append(f"memory: {result['memory_method']}")
    lines.append(
        "per CPU-s: pictures per CPU-second of the process and its loader workers (data side "
        "only): about what each worker delivers with a free core to itself"
    )
    return "\n".join(lines)


def __getattr__(name: str) -> Any:
    # the measuring loads torch: on first use, not for `python -m kit.bench --help`
    if name == "run_benchmark":
        from kit.bench.measure import run_benchmark

        return run_benchmark
    raise AttributeError(f"module 'kit.bench' has no attribute {name!r}")
