"""CPU seconds of ``--weights auto`` (``kit.search_weights``) on synthetic out-of-fold files.

    python scripts/bench_search.py                 # 20 members x 18,900 rows, 3 data sets
    python scripts/bench_search.py --members 5 --rows 3780 --sets 1

Each synthetic member is weak and differently biased (per-class offsets), like the runs of a
team's leaderboard, so the search has something to find. Printed per data set and method:
the search's CPU time, the number of weight vectors it scored, and its validation macro F1
beside the best member's and equal weights'.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence

import numpy as np

from kit.ensemble import combine, search_weights
from kit.metrics import macro_f1


def members(m: int, n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """``m`` members' (n, 18) probabilities and the n true classes (imbalanced)."""
    rng = np.random.default_rng(seed)
    y = rng.choice(18, n, p=rng.dirichlet(np.ones(18) * 2))
    out = []
    for _ in range(m):
        logits = rng.normal(0, 1, (n, 18)) + rng.normal(0, 0.6, (1, 18))
        logits[np.arange(n), y] += rng.uniform(0.3, 1.2)
        p = np.exp(logits)
        out.append(p / p.sum(1, keepdims=True))
    return out, y


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=20)
    p.add_argument("--rows", type=int, default=18_900)
    p.add_argument("--sets", type=int, default=3)
    p.add_argument("--methods", nargs="+", default=["weighted", "geometric"])
    args = p.parse_args(argv)
    print(f"{args.members} members x {args.rows} rows; load average {os.getloadavg()[0]:.2f}")
    head = f"{'set':>3} {'method':<10} {'CPU s':>6} {'scored':>7} {'F1':>7} {'best':>7}"
    print(f"{head} {'equal':>7}")
    for seed in range(args.sets):
        probs, y = members(args.members, args.rows, seed)
        for method in args.methods:
            start = time.process_time()
            found = search_weights(probs, y, method)
            cpu = time.process_time() - start
            equal = macro_f1(y, combine(method, probs)[1])
            print(
                f"{seed:>3} {method:<10} {cpu:6.2f} {found.evaluations:>7} {found.score:7.4f} "
                f"{found.best_member_score:7.4f} {equal:7.4f}"
            )
    print(f"load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
