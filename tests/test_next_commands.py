"""The end of a run names the next commands with its folder filled in, and they work."""

from __future__ import annotations

import logging
import shlex

from kit.runs.__main__ import main as runs_main
from kit.score import main as score_main
from kit.train import fit


def _next_lines(text: str) -> list[list[str]]:
    """The commands after ``next:``, as argument lists without their comments."""
    tail = text.split("next:\n", 1)[1].splitlines()
    return [shlex.split(line.split("#")[0]) for line in tail if line.startswith("  python -m")]


def test_a_run_ends_with_commands_that_work(tiny_cfg, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="kit"):
        run = fit(tiny_cfg.replace(quiet=False, epochs=1))
    commands = _next_lines(caplog.text)
    assert [c[2] for c in commands] == ["kit.score", "kit.runs", "kit.ensemble"]
    assert commands[0][3] == str(run.run_dir)
    assert commands[2][3] == str(run.run_dir)
    assert commands[1][3:] == [str(run.run_dir.parent), "--vs", run.run_dir.name]
    assert score_main(commands[0][3:]) == 0
    assert runs_main(commands[1][3:]) == 0


def test_a_run_after_the_baseline_compares_with_it(tiny_cfg, caplog) -> None:
    fit(tiny_cfg.replace(name="baseline", epochs=1))
    with caplog.at_level(logging.INFO, logger="kit"):
        fit(tiny_cfg.replace(name="bigger", quiet=False, epochs=1, image_size=(48, 36)))
    ledger = _next_lines(caplog.text)[1]
    assert ledger[-2:] == ["--vs", "baseline"]
    assert runs_main(ledger[3:]) == 0


def test_quiet_runs_print_no_next_commands(tiny_cfg, caplog) -> None:
    with caplog.at_level(logging.DEBUG):
        fit(tiny_cfg.replace(epochs=1))  # tiny_cfg is quiet
    assert "next:" not in caplog.text
