"""``create_model(cfg)``: any timm backbone plus a head of ``HEADS`` (``kit.heads``, re-exported
here with ``register_head`` and ``to_probs``).

Pretrained weights (``--pretrained``, ``--pretrained-tag``, ``--pretrained-file``) are found by
:func:`kit.pretrained.resolve_weights` (Hugging Face cache, else the hub, else the file) and
loaded by timm; the model keeps the record of what it loaded in ``model.weights``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from kit.errors import KitError, UserCodeError
from kit.heads import HEADS, HeadSpec, MultiHead, head_spec, register_head, to_probs
from kit.pretrained import Weights, WeightsUnavailable, resolve_weights
from kit.registry import user_origin

__all__ = [
    "HEADS",
    "Classifier",
    "HeadSpec",
    "MultiHead",
    "Weights",
    "WeightsUnavailable",
    "create_model",
    "register_head",
    "resolve_weights",
    "to_probs",
]


class Classifier(nn.Module):
    """``head(backbone(x))``; the backbone is a timm model built with ``num_classes=0``."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        #: the pretrained weights the backbone started from (None: random initialisation)
        self.weights: Weights | None = None

    def forward(self, x: torch.Tensor) -> Any:
        return self.head(self.backbone(x))


#: Share of the backbone's parameters a weights file must name for it to count as this model's.
_MIN_WEIGHTS_FOUND = 0.9


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


def create_model(cfg: Any, weights: Weights | None = None) -> Classifier:
    """The model of ``cfg``: ``timm.create_model(cfg.model, num_classes=0)`` plus ``cfg.head``.

    With ``cfg.pretrained`` or ``cfg.pretrained_file`` the backbone starts from the weights
    :func:`resolve_weights` finds (or from ``weights``, already resolved), without their
    classifier; ``model.weights`` records them. Fixed-size models (ViT, Swin) are built for
    ``cfg.image_size``. Unknown heads or models raise ValueError.
    """
    import timm

    head = head_spec(cfg.head)
    if not timm.is_model(cfg.model):
        raise ValueError(
            f"unknown timm model {cfg.model!r}; list names with timm.list_models('*pattern*')"
        )
    if weights is None:
        weights = resolve_weights(cfg)
    name = cfg.model if weights is None else weights.name
    kwargs: dict[str, Any] = {"num_classes": 0}
    default_cfg = timm.get_pretrained_cfg(cfg.model)
    if default_cfg is not None and default_cfg.fixed_input_size:
        # ViT / Swin build position tables for one size: build them for ours
        kwargs["img_size"] = tuple(cfg.image_size)
    if weights is not None:
        # source="" keeps timm on the resolved file: it neither looks up nor downloads again
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": weights.file, "source": ""})
    try:
        backbone = timm.create_model(name, **kwargs)
    except Exception as err:  # torch / pickle / safetensors errors of a bad weights file
        origin = user_origin(timm.models.model_entrypoint(cfg.model))
        if origin is not None and not isinstance(err, KitError):  # timm.register_model'd
            raise UserCodeError(
                f"model {cfg.model!r} (your code, in {origin}) failed on {kwargs}: "
                f"{type(err).__name__}: {err}; fix it there (--debug shows its traceback)"
            ) from err
        if weights is None:
            raise
        raise ValueError(
            f"cannot load pretrained_file {weights.file} for model {cfg.model!r} "
            f"({type(err).__name__}: {err}); expected a file written by "
            f"torch.save(timm.create_model('{cfg.model}', pretrained=True).state_dict(), ...)"
        ) from err
    if weights is not None and weights.source == "file":
        _check_weights(backbone, Path(weights.file), cfg.model)
    width = getattr(backbone, "head_hidden_size", None) or backbone.num_features
    with HEADS.calling(cfg.head, on=f"in_features={width} (model {cfg.model!r})"):
        built = head.build(width)
        if not isinstance(built, nn.Module):
            raise TypeError(f"returned {type(built).__name__}; expected a torch nn.Module")
    model = Classifier(backbone, built)
    model.weights = weights
    return model
