"""A public way into the middle of a training epoch, shared by the fault and resume tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import timm


def at_training_step(monkeypatch: pytest.MonkeyPatch, step: int, action: Callable[[], None]):
    """Make every model timm builds call ``action()`` at its ``step``-th training forward pass
    (validation runs in eval mode and is not counted). The hook only observes the model."""
    real, calls = timm.create_model, [0]

    def hook(module, args):
        if module.training:
            calls[0] += 1
            if calls[0] == step:
                action()

    def create_model(*args, **kwargs):
        model = real(*args, **kwargs)
        model.register_forward_pre_hook(hook)
        return model

    monkeypatch.setattr(timm, "create_model", create_model)
