"""Time test files side by side: every ``python`` command of the tests a new interpreter
(``KIT_TEST_FORK=0``) against forked from the warm server of tests/_proc.py (the default).
Prints wall and CPU seconds (pytest and everything it started) of each way and their ratio,
with the machine's load before each, so a reader can tell what the fork saves where.

    python scripts/bench_tests.py tests/test_recipes.py tests/test_docs.py
    python scripts/bench_tests.py tests/test_entry_points.py -- -m "slow or not slow"
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time


def _cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _timed(tests: list[str], extra: list[str], fork: str) -> tuple[float, float, int]:
    env = {**os.environ, "KIT_TEST_FORK": fork}
    cmd = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", *tests]
    wall, cpu = time.perf_counter(), _cpu()
    done = subprocess.run([*cmd, *extra], env=env, capture_output=True, text=True)
    return time.perf_counter() - wall, _cpu() - cpu, done.returncode


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("tests", nargs="+", help="test files or node ids")
    p.add_argument("pytest_args", nargs=argparse.REMAINDER, help="after --: passed to pytest")
    args = p.parse_args()
    extra = [a for a in args.pytest_args if a != "--"]
    rows = {}
    for fork, label in (("0", "new interpreter each"), ("1", "forked, warm")):
        load = os.getloadavg()[0]
        wall, cpu, code = _timed(args.tests, extra, fork)
        rows[label] = (wall, cpu)
        status = "passed" if code == 0 else f"FAILED (exit {code})"
        print(f"{label:>22}: {wall:7.1f} s wall {cpu:7.1f} CPU-s  load {load:.1f}  {status}")
    (w0, c0), (w1, c1) = rows.values()
    print(f"{'ratio':>22}: {w0 / w1:7.2f}x wall {c0 / c1:5.2f}x CPU")


if __name__ == "__main__":
    main()
