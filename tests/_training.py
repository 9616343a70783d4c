"""A public way into the middle of a training epoch, shared by the fault and resume tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import timm

from kit.config import Config
from kit.train import fit


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


def interrupted_in_epoch_2(cfg: Config) -> int:
    """Run ``kit.fit(cfg)`` and stop it with Ctrl-C (KeyboardInterrupt) two training steps
    into its second epoch; the exit code it ends with (its run folder stays in output_dir)."""

    def interrupt():
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as mp:
        at_training_step(mp, cfg.max_steps_per_epoch + 2, interrupt)
        with pytest.raises(SystemExit) as exit_info:
            fit(cfg)
    return exit_info.value.code
