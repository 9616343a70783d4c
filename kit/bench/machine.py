"""What a benchmark runs on: the fixture pictures and the machine's description."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path
from typing import Any

import torch

from kit.data.fixture import make_fixture
from kit.data.sampling import usable_cores
from kit.device import cpu_info

__all__ = ["ensure_fixture", "machine_info"]


def ensure_fixture(people: int, size: tuple[int, int], root: Path = Path("data")) -> Path:
    """``data/bench-<H>x<W>-<people>``: a training set of synthetic pictures of ``size``
    (height, width), built once."""
    folder = root / f"bench-{size[0]}x{size[1]}-{people}"
    if not (folder / "train" / "train.csv").is_file():
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        make_fixture(tmp, n_people=people, image_size=size, seed=0, n_eval_people=0)
        try:
            os.replace(tmp, folder)
        except OSError:  # another process built it first
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def machine_info(device: torch.device) -> dict[str, Any]:
    """Cores, CPU model, torch version, device: what the figures depend on."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "cores": usable_cores(),
        "cpu": cpu_info()["cpu"],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "device": str(device),
        "gpu": gpu,
    }
