"""Troubleshooting triggers of one's own code: model sources, optimizers and fine-tuning, and
the registered pieces a run folder must find again (docs/troubleshooting.md)."""

from __future__ import annotations

import json
import urllib.error
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from kit.config import Config, check_registries
from kit.models import MODELS, register_model, resolve_weights
from kit.runfolder import ensure_run_code
from kit.transforms import normalization
from tests._triggers import raised


def _torchvision_offline(c: Any) -> str:
    c.mp.setenv("TORCH_HOME", str(c.tmp / "torch"))

    def unreachable(url: str, dst: str, *args: Any, **kwargs: Any) -> None:
        raise urllib.error.URLError("no route to host")

    c.mp.setattr(torch.hub, "download_url_to_file", unreachable)
    return raised(lambda: resolve_weights(Config(model="torchvision/resnet18", pretrained=True)))


def _no_normalisation(c: Any) -> str:
    register_model("_trouble_net")(lambda: nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()))
    try:
        return raised(lambda: normalization(Config(model="_trouble_net", pretrained=True)))
    finally:
        MODELS.unregister("_trouble_net")


def _run_code_gone(c: Any) -> str:
    run = c.tmp / "run"
    run.mkdir()
    code = [{"kind": "head", "name": "gone_head", "module": "__main__", "file": "/x/recipe.py"}]
    (run / "env.json").write_text(json.dumps({"code": code}))
    return raised(lambda: ensure_run_code(run, Config(head="gone_head")))


def _run_code_broken(c: Any) -> str:
    run = c.tmp / "run"
    run.mkdir()
    (run / "recipe.py").write_text("import no_such_module_of_mine\n")
    return raised(lambda: ensure_run_code(run, Config(head="gone_head")))


OWN_CODE: dict[str, Callable[[Any], str]] = {
    "optimizer-unknown": lambda c: raised(lambda: check_registries(Config(optimizer="lambb"))),
    "freeze-epochs-too-many": lambda c: raised(
        lambda: Config(epochs=2, freeze_epochs=2).validate()
    ),
    "torchvision-weights-unavailable": _torchvision_offline,
    "model-normalisation-unknown": _no_normalisation,
    "run-code-missing": _run_code_gone,
    "run-code-broken": _run_code_broken,
}
