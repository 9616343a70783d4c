"""Commands answer at once: no recipe's or ``python -m kit...`` command's ``--help``, and not the
ledger, imports torch (issue #28). A structural check, not a timing one (scripts/bench_startup.py
prints the seconds): torch, timm and albumentations cost seconds of CPU before any help is printed.

Each command runs as if typed in a shell, in a fork of one fresh interpreter
(tests/_startup_probe.py), so that this test process's own imports cannot hide one, and a new
recipe or command is covered without a list to update (tests/_commands.py finds them).
"""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from tests._commands import NOT_COMMANDS, ROOT, kit_commands, recipe_paths
from tests._runfolders import RunSpec, metrics_row, summary, write_run

#: What neither help nor the ledger may load: seconds of CPU each, before any output.
TRAINING = ("torch", "timm", "albumentations", "kornia")
#: The ledger lists run folders: no pictures, no scikit-learn either.
LEDGER_FREE = (*TRAINING, "matplotlib", "sklearn")

#: Commands that still load torch for --help, with why; each is a known gap, listed so that it
#: cannot grow unnoticed (the test fails on any command not listed here).
STILL_HEAVY: dict[str, str] = {}


def _probe(*args: str) -> dict[str, list[str]]:
    result = subprocess.run(
        [sys.executable, "-m", "tests._startup_probe", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(result.stdout)


@pytest.mark.slow  # a fresh interpreter on purpose (forked per command): what --help imports cold
def test_no_help_imports_torch():
    loaded = _probe()
    expected = {f"python recipes/{p.name} --help" for p in recipe_paths()}
    expected |= {f"python -m {m} --help" for m in kit_commands() if m not in NOT_COMMANDS}
    assert set(loaded) == expected  # every recipe and command was run
    assert all("usage:" in found["stdout"] for found in loaded.values()), loaded
    heavy = {
        command: [m for m in found["modules"] if m in TRAINING]
        for command, found in loaded.items()
        if command not in STILL_HEAVY and set(found["modules"]) & set(TRAINING)
    }
    assert heavy == {}, f"--help imports {heavy}: import these inside the function that needs them"
    for command in STILL_HEAVY:  # a gap that closed comes off the list
        light = not set(loaded[command]["modules"]) & set(TRAINING)
        assert not light, f"{command} is light now: take it off STILL_HEAVY"


def test_the_ledger_imports_neither_torch_nor_pictures(tmp_path: Path):
    for k in range(3):
        rows = [metrics_row(epoch, 0.5 + 0.1 * k) for epoch in (1, 2)]
        stamp, lr = f"2024010{k + 1}-120000", 0.001 * (k + 1)
        spec = RunSpec(stamp=stamp, config={"lr": lr}, metrics=rows, summary=summary(0.6))
        write_run(tmp_path, spec)
    (found,) = _probe("--ledger", str(tmp_path)).values()
    assert found["stdout"].count("baseline") == 3, found["stdout"]  # it listed the runs
    assert not set(found["modules"]) & set(LEDGER_FREE), found["modules"]


def test_the_generated_builtin_entries_are_up_to_date():
    """kit/_builtin_entries.py (what --help lists without importing the registries' modules)
    is what scripts/write_builtin_entries.py makes of the registries themselves."""
    script = runpy.run_path(str(ROOT / "scripts" / "write_builtin_entries.py"))
    committed = (ROOT / "kit" / "_builtin_entries.py").read_text(encoding="utf-8")
    assert committed == script["source"](), (
        "kit/_builtin_entries.py is stale (a registry entry was added, renamed or its first "
        "docstring line changed): run python scripts/write_builtin_entries.py"
    )
