"""A torchvision of another torch build, planted in front of the real one (#24): what
tests/test_doctor.py provokes docs/troubleshooting.md's ``torchvision-build`` row with, and the
fix tests/test_troubleshooting_fixes.py checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["DAY_ONE_FIXES", "plant_torchvision", "run_with_planted"]

ROOT = Path(__file__).resolve().parents[1]


def plant_torchvision(folder: Path, version: str = "0.28.0") -> Path:
    """A torchvision ``version`` in ``folder`` that fails on import the way one built for
    another torch does; put ``folder`` first on PYTHONPATH."""
    package = folder / "torchvision"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(
        'raise RuntimeError("operator torchvision::nms does not exist")\n'
    )
    meta = folder / f"torchvision-{version}.dist-info"
    meta.mkdir(exist_ok=True)
    (meta / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: torchvision\nVersion: {version}\n"
    )
    return folder


def run_with_planted(folder: Path, code: str) -> subprocess.CompletedProcess[str]:
    """``python -c code`` with the planted torchvision in front of everything."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)])}
    env.pop("KIT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )


def _torchvision_build(ctx) -> str:
    done = run_with_planted(plant_torchvision(ctx.tmp / "planted"), "import kit.mixing")
    return done.stdout + done.stderr


def _torchvision_reinstalled(ctx) -> tuple[str, str]:
    """Before: the planted torchvision; after the reinstall the fix names, the torchvision of
    this torch's build (the environment's own) imports and kit with it."""
    before = _torchvision_build(ctx)
    done = run_with_planted(ctx.tmp / "reinstalled", "import kit.mixing, torchvision; print('ok')")
    return before, done.stdout + done.stderr


DAY_ONE_FIXES = {"torchvision-build": _torchvision_reinstalled}
