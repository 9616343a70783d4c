"""Optimizers and learning-rate schedules with linear warmup.

The schedule is stepped once per optimizer step (after gradient accumulation): the learning rate
is ``lr * warmup(step) * shape(step)``, with ``shape`` from :data:`SCHEDULERS`. ``plateau`` is
the exception: its factor drops at epoch ends when the validation macro F1 stalls.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

__all__ = ["OPTIMIZERS", "SCHEDULERS", "SCHEDULER_KWARGS", "LRSchedule", "build_optimizer"]


def _adamw(params: Iterable[Any], cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def _sgd(params: Iterable[Any], cfg: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True
    )


#: name -> builder(param groups, cfg).
OPTIMIZERS: dict[str, Callable[[Iterable[Any], Any], torch.optim.Optimizer]] = {
    "adamw": _adamw,
    "sgd": _sgd,
}


def build_optimizer(model: nn.Module, cfg: Any) -> torch.optim.Optimizer:
    """``cfg.optimizer`` over ``model``; biases and norm weights get no weight decay."""
    if cfg.optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; valid: {sorted(OPTIMIZERS)}")
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]
    return OPTIMIZERS[cfg.optimizer](groups, cfg)


# A shape maps (progress after warmup in 0..1, epoch progress in epochs, kwargs) -> factor.
_Shape = Callable[[float, float, dict[str, float]], float]


def _cosine(t: float, epoch: float, kw: dict[str, float]) -> float:
    floor = kw.get("min_lr_ratio", 0.0)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))


def _step(t: float, epoch: float, kw: dict[str, float]) -> float:
    every = kw.get("step_epochs", 0) or kw.get("_epochs", 3) / 3
    return kw.get("gamma", 0.1) ** math.floor(epoch / max(every, 1e-9))


def _constant(t: float, epoch: float, kw: dict[str, float]) -> float:
    return 1.0


#: scheduler name -> shape after warmup (plateau's drops are applied at epoch ends).
SCHEDULERS: dict[str, _Shape] = {
    "cosine": _cosine,
    "step": _step,
    "plateau": _constant,
    "none": _constant,
}
#: the ``cfg.scheduler_kwargs`` each scheduler understands.
SCHEDULER_KWARGS: dict[str, tuple[str, ...]] = {
    "cosine": ("min_lr_ratio",),
    "step": ("step_epochs", "gamma"),
    "plateau": ("patience", "factor"),
    "none": (),
}


class LRSchedule:
    """Sets the optimizer's learning rates every step; ``state_dict`` makes it resumable."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: Any, steps_per_epoch: int) -> None:
        if cfg.scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler {cfg.scheduler!r}; valid: {sorted(SCHEDULERS)}")
        self.optimizer = optimizer
        self.kind = cfg.scheduler
        self.kwargs = {**cfg.scheduler_kwargs, "_epochs": cfg.epochs}
        self.base_lrs = [cfg.lr for _ in optimizer.param_groups]
        self.steps_per_epoch = max(1, steps_per_epoch)
        self.total = self.steps_per_epoch * cfg.epochs
        self.warmup = min(round(cfg.warmup_epochs * self.steps_per_epoch), self.total - 1)
        self.step_count = 0
        self.plateau_scale, self.best, self.bad_epochs = 1.0, -math.inf, 0
        self._apply()

    def factor(self, step: int) -> float:
        """The learning-rate multiplier at optimizer step ``step``."""
        warm = min(1.0, (step + 1) / (self.warmup + 1)) if self.warmup > 0 else 1.0
        t = (step - self.warmup) / max(1, self.total - self.warmup)
        shape = SCHEDULERS[self.kind](max(t, 0.0), step / self.steps_per_epoch, self.kwargs)
        return warm * shape * self.plateau_scale

    def step(self) -> None:
        """Advance one optimizer step."""
        self.step_count += 1
        self._apply()

    def epoch_end(self, score: float) -> None:
        """Plateau only: shrink the rate after ``patience`` epochs without a better score."""
        if self.kind != "plateau":
            return
        if score > self.best:
            self.best, self.bad_epochs = score, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.kwargs.get("patience", 1):
            self.plateau_scale *= self.kwargs.get("factor", 0.1)
            self.bad_epochs = 0
            self._apply()

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _apply(self) -> None:
        f = self.factor(self.step_count)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["lr"] = base * f

    def state_dict(self) -> dict[str, Any]:
        keys = ("step_count", "plateau_scale", "best", "bad_epochs")
        return {k: getattr(self, k) for k in keys}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)
        self._apply()
