"""Triggers of the messages of the training techniques (mixing, boundary ages, EMA, logit
adjustment, refit, test-time views), for tests/test_troubleshooting.py."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import torch

from kit.config import Config
from kit.losses import build_loss
from kit.splits import drop_ages
from tests._triggers import raised


def _raised(fn: Callable[[], object]) -> str:
    return raised(fn, ValueError, TypeError)  # config and loss checks: never another kind


_PEOPLE = pd.DataFrame({"age": [27, 28, 29], "path": ["a", "b", "c"]})

TECHNIQUES: dict[str, Callable[[object], str]] = {
    "drop-ages-spec": lambda c: _raised(lambda: Config(drop_ages="27_29").validate()),
    "drop-ages-all": lambda c: _raised(lambda: drop_ages(_PEOPLE, "20-30")),
    "mix-lam-range": lambda c: _raised(lambda: Config(mix_lam=(0.6, 0.4)).validate()),
    "ema-decay-range": lambda c: _raised(lambda: Config(ema_decay=1.0).validate()),
    "refit-kfold": lambda c: _raised(lambda: Config(refit="continue", folds="all").validate()),
    "soft-target-classes": lambda c: raised(
        lambda: build_loss("cross_entropy")(torch.zeros(2, 18), torch.full((2, 3), 1 / 3))
    ),
}
