"""The module that trains: channels-last layout, DistributedDataParallel, ``torch.compile``.

The model itself (``parts["model"]``) stays a plain module, so checkpoints keep plain weight
names whatever wraps it for training; validation and inference run on that plain module.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kit.train.distributed import DistContext, wrap_ddp

__all__ = ["ChannelsLastInput", "prepare_model", "training_module"]


class ChannelsLastInput(nn.Module):
    """``model(x)`` with ``x`` in channels-last layout (the layout fast GPU convolutions use)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(x.contiguous(memory_format=torch.channels_last))


def prepare_model(model: nn.Module, cfg: Any) -> nn.Module:
    """``model`` with its weights in channels-last layout when ``cfg.channels_last`` (in place)."""
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def training_module(
    model: nn.Module, cfg: Any, ctx: DistContext, device: torch.device
) -> nn.Module:
    """What the training step calls: ``model`` with channels-last input, wrapped for several
    processes, compiled, as ``cfg`` asks. It shares ``model``'s parameters."""
    module: nn.Module = ChannelsLastInput(model) if cfg.channels_last else model
    module = wrap_ddp(module, ctx, device)
    if cfg.compile:
        module = torch.compile(module)
    return module
