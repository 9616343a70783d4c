"""Start-up of kit's commands, side by side: wall and CPU seconds of a fresh interpreter.

    python scripts/bench_startup.py                    # every recipe's and command's --help
    python scripts/bench_startup.py --repeats 3        # the median of 3 runs each
    python scripts/bench_startup.py --runs runs        # the ledger over your own run folders
    python scripts/bench_startup.py --ledger-runs 200  # the ledger over 200 copies of a run

Each command runs as its own process, exactly as a user types it; its CPU seconds (user + sys of
that process and its children, from ``os.wait4``) hold on a busy machine where wall time does
not, so both are printed, with the load average before and after. The ledger
(``python -m kit.runs DIR``) is timed on ``--runs DIR``, or else on 20 (``--ledger-runs N``) run
folders made by copying one ``--smoke`` baseline run (trained once into a temporary folder,
about a minute on a CPU) with a different learning rate each, so that the ledger has a column to
show. A team's ledger grows to hundreds of runs in two weeks: its time should grow with the runs
it reads, not with their square.

The goal (issue #28): each figure under 1.5 s on an idle machine. tests/test_startup.py checks
the cause structurally (no torch import for help or the ledger); this script measures.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: the commands' list comes from the tests' helper

from tests._commands import NOT_COMMANDS, kit_commands, recipe_paths  # noqa: E402


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + sys) of ``argv`` run to its end, output discarded."""
    import time

    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{err}")
    return wall, usage.ru_utime + usage.ru_stime


def ledger_folders(root: Path, n: int = 20) -> Path:
    """``root/runs``: ``n`` copies of one smoke baseline run, each with its own lr."""
    runs = root / "runs"
    subprocess.run(
        [sys.executable, "recipes/baseline.py", "--smoke", "--quiet", "--output-dir", str(runs)],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    (first,) = runs.iterdir()
    for i in range(1, n):
        copy = runs / f"{first.name}-{i:02d}"
        shutil.copytree(first, copy)
        config = json.loads((copy / "config.json").read_text())
        config["lr"] = round(config["lr"] * (1 + i / 10), 6)
        (copy / "config.json").write_text(json.dumps(config, indent=2))
    return runs


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=1, help="runs per command (median shown)")
    p.add_argument("--runs", type=Path, help="time the ledger on this folder of run folders")
    p.add_argument(
        "--ledger-runs",
        type=int,
        default=20,
        metavar="N",
        help="without --runs: the ledger over N copies of a smoke run (default: 20)",
    )
    args = p.parse_args(argv)

    python = sys.executable
    commands = [[python, str(path.relative_to(ROOT)), "--help"] for path in recipe_paths()]
    commands += [
        [python, "-m", module, "--help"] for module in kit_commands() if module not in NOT_COMMANDS
    ]
    with tempfile.TemporaryDirectory() as tmp:
        runs = args.runs or ledger_folders(Path(tmp), args.ledger_runs)
        n_runs = sum(1 for d in runs.iterdir() if d.is_dir())
        commands += [[python, "-m", "kit.runs", str(runs)]]
        print(f"load average before: {_load()}  (1, 5, 15 min)")
        print(f"{'command':<52} {'wall s':>7} {'CPU s':>7}")
        for cmd in commands:
            walls, cpus = zip(*(timed(cmd) for _ in range(args.repeats)), strict=True)
            shown = " ".join(cmd[1:]).replace(str(runs), f"<{n_runs} run folders>")
            print(f"{shown:<52} {statistics.median(walls):7.2f} {statistics.median(cpus):7.2f}")
    print(f"load average after: {_load()}")


if __name__ == "__main__":
    main()
