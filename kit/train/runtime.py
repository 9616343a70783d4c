"""Process-wide settings of a run: seeds, deterministic algorithms, the ``kit`` logger."""

from __future__ import annotations

import logging
import os
import random
import sys

import numpy as np
import torch

__all__ = ["seed_everything", "set_determinism", "setup_logging"]


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


def setup_logging(quiet: bool) -> logging.Logger:
    """The ``kit`` logger at INFO (WARNING when quiet), printing plain lines to stdout when
    nothing else (an application, pytest) has configured logging."""
    log = logging.getLogger("kit")
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.propagate = False
    return log
