"""``python -m kit.bench``: how close kit's data pipeline gets to the model's own speed.

In one process, at one model, image size, batch size and worker count, it measures training
throughput (a) on a batch already in memory (the limit), (b) through kit's loader with the
picture cache, (c) without it, and (d) through a plain per-sample pipeline like the official
baseline's; then the loaders alone for (b), (c) and (d), and each phase's peak memory.
See docs/benchmarks.md.
"""

from typing import Any

from kit.bench.options import PHASES, TARGETS, BenchOptions
from kit.bench.report import format_report

__all__ = ["PHASES", "TARGETS", "BenchOptions", "format_report", "run_benchmark"]


def __getattr__(name: str) -> Any:
    # the measuring loads torch: on first use, not for `python -m kit.bench --help`
    if name == "run_benchmark":
        from kit.bench.core import run_benchmark

        return run_benchmark
    raise AttributeError(f"module 'kit.bench' has no attribute {name!r}")
