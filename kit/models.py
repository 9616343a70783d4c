"""``create_model(cfg)``: any timm backbone plus a head of ``HEADS`` (``kit.heads``, re-exported
here with ``register_head`` and ``to_probs``).

Pretrained weights come only from a local file (``cfg.pretrained_file``): this kit assumes no
network, so a request for pretrained weights without a file fails at once with instructions
instead of letting timm / huggingface_hub retry downloads.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kit.heads import HEADS, HeadSpec, MultiHead, head_spec, register_head, to_probs

__all__ = [
    "HEADS",
    "NO_WEIGHTS_FILE",
    "Classifier",
    "HeadSpec",
    "MultiHead",
    "create_model",
    "register_head",
    "to_probs",
]

NO_WEIGHTS_FILE = (
    "pretrained=True needs a local weights file: this machine has no network, so timm cannot "
    "download {model!r}. Pass --pretrained-file PATH (Config.pretrained_file). To get the file, "
    'on a machine with internet run: python -c "import timm, torch; '
    "m = timm.create_model('{model}', pretrained=True); torch.save(m.state_dict(), "
    "'{model}.pth')\" and copy {model}.pth here."
)


class Classifier(nn.Module):
    """``head(backbone(x))``; the backbone is a timm model built with ``num_classes=0``."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> Any:
        return self.head(self.backbone(x))


#: Share of the backbone's parameters a weights file must name for it to count as this model's.
_MIN_WEIGHTS_FOUND = 0.9


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """No hub access during model creation: a stray download attempt fails fast."""
    keys = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(dict.fromkeys(keys, "1"))
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _weights_file(cfg: Any) -> Path | None:
    if cfg.pretrained_file is None:
        if cfg.pretrained:
            raise ValueError(NO_WEIGHTS_FILE.format(model=cfg.model))
        return None
    path = Path(cfg.pretrained_file).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"pretrained_file {path} does not exist (model {cfg.model!r})")
    return path


def _check_weights(backbone: nn.Module, path: Path, model: str) -> None:
    """Refuse a weights file of another architecture: timm loads such a file without error
    (strict=False), leaving a randomly initialised backbone behind a log line."""
    from timm.models import load_state_dict

    keys = set(load_state_dict(str(path)))
    wanted = [name for name, _ in backbone.named_parameters()]
    found = sum(name in keys for name in wanted)
    if found < _MIN_WEIGHTS_FOUND * len(wanted):
        missing = next(name for name in wanted if name not in keys)
        raise ValueError(
            f"pretrained_file {path} does not fit model {model!r}: it holds {found} of the "
            f"backbone's {len(wanted)} weights (no {missing!r}, for one); expected the "
            f"state_dict of timm.create_model('{model}')"
        )


def create_model(cfg: Any) -> Classifier:
    """The model of ``cfg``: ``timm.create_model(cfg.model, num_classes=0)`` plus ``cfg.head``.

    With ``cfg.pretrained_file`` set (it implies ``pretrained``) the backbone starts from that
    file's weights (a timm ``state_dict``; its classifier is dropped). Fixed-size models (ViT,
    Swin) are built for ``cfg.image_size``. Unknown heads or models raise ValueError.
    """
    import timm

    head = head_spec(cfg.head)
    if not timm.is_model(cfg.model):
        raise ValueError(
            f"unknown timm model {cfg.model!r}; list names with timm.list_models('*pattern*')"
        )
    weights = _weights_file(cfg)
    kwargs: dict[str, Any] = {"num_classes": 0}
    default_cfg = timm.get_pretrained_cfg(cfg.model)
    if default_cfg is not None and default_cfg.fixed_input_size:
        # ViT / Swin build position tables for one size: build them for ours
        kwargs["img_size"] = tuple(cfg.image_size)
    if weights is not None:
        # source="" keeps timm on the local file even where the default source is the hub
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(weights), "source": ""})
    with _offline():
        try:
            backbone = timm.create_model(cfg.model, **kwargs)
        except Exception as err:  # torch / pickle / safetensors errors of a bad weights file
            if weights is None:
                raise
            raise ValueError(
                f"cannot load pretrained_file {weights} for model {cfg.model!r} "
                f"({type(err).__name__}: {err}); expected a file written by "
                f"torch.save(timm.create_model('{cfg.model}', pretrained=True).state_dict(), ...)"
            ) from err
    if weights is not None:
        _check_weights(backbone, weights, cfg.model)
    width = getattr(backbone, "head_hidden_size", None) or backbone.num_features
    return Classifier(backbone, head.build(width))
