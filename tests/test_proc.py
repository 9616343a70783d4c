"""tests/_proc.py starts ``python`` commands warm: each must still behave as a fresh interpreter
(its argv, folder, environment, sys.path, __main__, exit code and streams; no state of the test
process), or the tests that use it would test something else than what a user runs."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import kit
from kit.losses import LOSSES
from tests import _proc

PROBE = """
import json, os, sys
from kit.losses import LOSSES
print(json.dumps({
    "argv": sys.argv, "cwd": os.getcwd(), "path0": sys.path[0], "main": __name__,
    "env": os.environ.get("COLUMNS"), "losses": sorted(LOSSES.names()),
    "file": globals().get("__file__"),
}))
print("to stderr", file=sys.stderr)
"""


def _no_loss(**_):
    return None


def _both(
    cmd: list[str], **kwargs
) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    warm = _proc.run(cmd, **kwargs)
    cold = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    return warm, cold


@pytest.mark.parametrize("form", ["-c", "script", "-m"])
def test_a_warm_command_sees_what_a_fresh_interpreter_sees(form: str, tmp_path: Path):
    if "only_in_the_test_process" not in LOSSES.names():  # registered here, must not leak
        kit.register_loss("only_in_the_test_process")(_no_loss)
    script = tmp_path / "probe_mod.py"
    script.write_text(PROBE)
    head = {"-c": ["-c", PROBE], "script": [str(script)], "-m": ["-m", "probe_mod"]}[form]
    env = {**os.environ, "COLUMNS": "77"}  # a variable a fork may change
    if form == "-m":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp_path), env.get("PYTHONPATH")]))
    assert _proc._forkable([sys.executable, *head], env) is not None  # this test forks
    warm, cold = _both([sys.executable, *head, "a", "b"], cwd=tmp_path, env=env)
    assert (warm.returncode, warm.stderr) == (cold.returncode, cold.stderr) == (0, "to stderr\n")
    assert json.loads(warm.stdout) == json.loads(cold.stdout)
    assert "only_in_the_test_process" not in json.loads(warm.stdout)["losses"]


@pytest.mark.parametrize(
    ("code", "returncode"),
    [("raise SystemExit(3)", 3), ("raise SystemExit('error: x')", 1), ("1/0", 1), ("pass", 0)],
)
def test_exit_codes_and_tracebacks_are_a_fresh_interpreters(code: str, returncode: int):
    assert _proc._forkable([sys.executable, "-c", code], dict(os.environ)) is not None
    warm, cold = _both([sys.executable, "-c", code])
    assert warm.returncode == cold.returncode == returncode
    assert warm.stderr == cold.stderr


def test_variables_kit_sets_while_a_test_runs_keep_commands_warm(monkeypatch):
    """kit sets a few variables in its own process (determinism, the doctor); once a test has fit
    or run the doctor in-process, every later command of that worker must still fork."""
    import re

    source = "\n".join(p.read_text() for p in (_proc.ROOT / "kit").rglob("*.py"))
    set_by_kit = set(re.findall(r"os\.environ(?:\.setdefault\(|\[)\"([A-Z_]+)\"", source))
    assert "CUBLAS_WORKSPACE_CONFIG" in set_by_kit  # the pattern finds what kit sets
    assert set_by_kit <= _proc._READ_WHEN_USED
    _proc._started()
    for name in set_by_kit:
        monkeypatch.setenv(name, "set by a test")
    assert _proc._forkable([sys.executable, "-c", "pass"], dict(os.environ)) is not None


def test_a_command_past_its_timeout_is_killed():
    with pytest.raises(subprocess.TimeoutExpired):
        _proc.run(
            [sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"],
            timeout=0.5,
        )
    assert _proc.run([sys.executable, "-c", "print('next')"]).stdout == "next\n"  # server lives


def test_what_only_a_new_interpreter_can_do_goes_to_subprocess(monkeypatch, tmp_path: Path):
    seen = []
    monkeypatch.setattr(_proc.subprocess, "run", lambda cmd, **kw: seen.append(cmd) or None)
    hashseed = {**os.environ, "PYTHONHASHSEED": "123"}
    (tmp_path / "torchvision").mkdir()  # a folder that shadows a preloaded package
    shadow = {**os.environ, "PYTHONPATH": str(tmp_path)}
    _proc.run([sys.executable, "-c", "pass"], env=hashseed)
    _proc.run([sys.executable, "-W", "error", "-c", "pass"])
    _proc.run([sys.executable, "-c", "pass"], env=shadow)
    _proc.run(["git", "--version"])
    assert len(seen) == 4


def test_the_imports_are_frozen_for_the_garbage_collector_here_and_in_each_fork():
    frozen = "import gc; print(gc.get_freeze_count())"
    assert gc.get_freeze_count() > 100_000  # tests/conftest.py, after collection
    forked = _proc.run([sys.executable, "-c", frozen])
    assert int(forked.stdout) > 100_000, forked.stderr
    assert "torch" in _proc.PRELOAD  # what the forks' count holds


def test_python_on_a_shells_path_runs_warm_and_replays_streams_and_code(tmp_path: Path):
    with _proc.python_on_path(tmp_path / "bin") as shims:
        env = {**os.environ, "PATH": shims + os.pathsep + os.environ["PATH"], "PS1": "$ "}
        script = "python -c 'import sys; print(sys.argv[1:]); sys.exit(5)' x || echo code=$?"
        done = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
        parent = "python -c 'import os; print(os.getppid())'"  # the server's fork, not cold
        forked = subprocess.run(["bash", "-c", parent], env=env, capture_output=True, text=True)
    assert done.stdout == "['x']\ncode=5\n"
    assert forked.stdout == f"{_proc._server['proc'].pid}\n", forked.stderr
