"""Run in a fresh interpreter by tests/test_startup.py: each command's ``--help`` (or, with
``--ledger DIR``, the ledger of DIR) in a fork of this interpreter, as if typed in a shell, then
print as JSON the heavy modules each command imported. Forking keeps the commands apart (what one
imports cannot hide what the next imports) for the price of one interpreter start."""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import sys
import warnings

HEAVY = ("torch", "timm", "albumentations", "cv2", "sklearn", "matplotlib", "kornia", "scipy")


def _heavy_after(argv: list[str], module: str | None = None, path: str | None = None) -> dict:
    """``modules``: those of :data:`HEAVY` that running ``argv`` in a child process imports;
    ``stdout``: what it printed."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: run the command, report, leave without cleanup
        os.close(read)
        sys.argv = argv
        if path:
            sys.path.insert(0, os.path.dirname(path))  # as `python recipes/x.py` does
        warnings.simplefilter("ignore")  # runpy's "found in sys.modules" for kit.data.fixture
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            if module:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(path, run_name="__main__")
        found = {"modules": [m for m in HEAVY if m in sys.modules], "stdout": out.getvalue()}
        os.write(write, json.dumps(found).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        found = pipe.read()
    os.waitpid(pid, 0)
    return json.loads(found or '{"modules": ["(the command crashed)"], "stdout": ""}')


def main() -> None:
    from tests._commands import NOT_COMMANDS, kit_commands, recipe_paths

    loaded: dict[str, list[str]] = {}
    if sys.argv[1:2] == ["--ledger"]:
        loaded["python -m kit.runs DIR"] = _heavy_after(["kit.runs", sys.argv[2]], "kit.runs")
    else:
        for path in recipe_paths():
            command = f"python recipes/{path.name} --help"
            loaded[command] = _heavy_after([str(path), "--help"], path=str(path))
        for module in kit_commands():
            if module not in NOT_COMMANDS:
                command = f"python -m {module} --help"
                loaded[command] = _heavy_after([module, "--help"], module)
    print(json.dumps(loaded, indent=1))


if __name__ == "__main__":
    main()
