"""One short measurement of kit's cached training loader, for A/B runs of two checkouts.

    PYTHONPATH=<checkout> python scripts/bench_ab.py --preset base --workers 0

Prints one JSON line: pictures per CPU-second of this process and its loader workers (from
/proc, Linux only) over ``--batches`` batches after ``--warmup``, drawn by
``kit.bench.measure.kit_loader`` from the 224x224 cache of the benchmark fixture
(``data/bench-384x512-300``, built by ``scripts/bench_data.py``). Alternating two checkouts'
runs, many times, and comparing medians is what survives a machine shared with other work.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from kit.bench.measure import kit_loader
from kit.config import Config
from kit.data import read_train
from kit.data.pictures import build_run_cache


def _tree_cpu() -> float:
    me, ticks, todo, seen = os.getpid(), 0, [os.getpid()], set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        for task in os.scandir(f"/proc/{pid}/task"):
            try:
                with open(f"{task.path}/children") as f:
                    todo += [int(c) for c in f.read().split()]
            except OSError:
                pass
        if pid != me:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                pass
    return time.process_time() + ticks / os.sysconf("SC_CLK_TCK")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="base")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--batches", type=int, default=30)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--cache-dir", default="/tmp/kit-bench-ab-cache")
    args = p.parse_args()
    torch.set_num_threads(1)
    df = read_train("data/bench-384x512-300").sample(frac=1.0, random_state=0)
    df = df.reset_index(drop=True)
    cfg = Config(image_size=(224, 224), workers=args.workers, seed=0, preset=args.preset)
    cache = build_run_cache(cfg, sorted(set(df["path"].astype(str))), args.cache_dir, False)
    it = iter(kit_loader(df, cfg, cache))
    for _ in range(args.warmup):
        next(it)
    cpu, wall = _tree_cpu(), time.perf_counter()
    n = sum(len(next(it)[0]) for _ in range(args.batches))
    cpu, wall = _tree_cpu() - cpu, time.perf_counter() - wall
    print(
        json.dumps(
            {
                "preset": args.preset,
                "workers": args.workers,
                "pictures": n,
                "per_cpu_s": round(n / cpu),
                "per_s": round(n / wall),
            }
        )
    )


if __name__ == "__main__":
    main()
