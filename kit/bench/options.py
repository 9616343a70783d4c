"""What ``python -m kit.bench`` measures and its options, apart from the measuring (torch), so
that the command's ``--help`` and its parser answer without loading torch."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PHASES", "TARGETS", "BenchOptions"]

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
