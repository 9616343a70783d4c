"""The device a run computes on, the precision of its autocast (AMP), and what makes it
repeatable: seeds, deterministic kernels and the random states a checkpoint keeps.

``cfg.amp_dtype`` (:data:`AMP_DTYPES`): ``auto`` is bfloat16 on a GPU that supports it
(Ampere and later), else float16; ``bfloat16`` also runs on the CPU; ``float16`` is CUDA only;
elsewhere the run computes in float32. Only float16 needs a gradient scaler: bfloat16 has
float32's exponent range, so its small gradients do not underflow. The random states are
tensors and plain values, so a checkpoint holding them loads with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kit.registry import Registry

__all__ = [
    "AMP_DTYPES",
    "Amp",
    "cpu_info",
    "pick_amp",
    "resolve_device",
    "rng_state",
    "seed_everything",
    "set_determinism",
    "set_rng_state",
]


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda if present, else mps, else cpu; anything else as torch reads it."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


#: ``cfg.amp_dtype`` -> the autocast dtype it gives on a device (None: float32, no autocast).
AMP_DTYPES: Registry[Callable[[torch.device], torch.dtype | None]] = Registry("amp_dtype")


@AMP_DTYPES.register("auto")
def _auto(device: torch.device) -> torch.dtype | None:
    if device.type != "cuda":
        return None  # CPU autocast is slower than float32 on most CPUs: only when asked
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@AMP_DTYPES.register("bfloat16")
def _bfloat16(device: torch.device) -> torch.dtype | None:
    return torch.bfloat16 if device.type in ("cuda", "cpu") else None


@AMP_DTYPES.register("float16")
def _float16(device: torch.device) -> torch.dtype | None:
    return torch.float16 if device.type == "cuda" else None


@dataclass(frozen=True)
class Amp:
    """The autocast of a run on its device: ``dtype`` None computes in float32."""

    device_type: str
    dtype: torch.dtype | None = None

    @property
    def name(self) -> str:
        """``bfloat16``, ``float16`` or ``float32`` (no autocast): what env.json records."""
        return str(self.dtype or torch.float32).removeprefix("torch.")

    @property
    def scaled(self) -> bool:
        """Whether the loss needs a gradient scaler (float16 only)."""
        return self.dtype == torch.float16

    def autocast(self) -> Any:
        """The autocast context of the forward pass (a no-op in float32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def scaler(self) -> torch.amp.GradScaler:
        """A gradient scaler, enabled only where :attr:`scaled`."""
        return torch.amp.GradScaler(self.device_type, enabled=self.scaled)


def pick_amp(cfg: Any, device: torch.device) -> Amp:
    """The autocast of ``cfg`` (``amp``, ``amp_dtype``) on ``device``."""
    dtype = AMP_DTYPES.use(cfg.amp_dtype)(device) if cfg.amp else None
    return Amp(device.type, dtype)


def cpu_info() -> dict[str, str]:
    """The processor (``cpu``: its model name) and the widest vector instructions torch's CPU
    kernels use on it (``cpu_capability``, e.g. AVX2, AVX512): on a CPU they decide how the
    sums round, so two machines can give one seed different metrics."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_determinism(deterministic: bool) -> None:
    """Deterministic kernels (warn where none exists) or the fastest cuDNN choice."""
    if deterministic:
        # cuBLAS needs this before its first use to be deterministic on CUDA >= 10.2
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def rng_state() -> dict[str, Any]:
    """The python, numpy and torch (CPU and CUDA) random states as tensors / plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
