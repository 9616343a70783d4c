"""``create_model(cfg)``: a backbone plus a head of ``HEADS`` (``kit.heads``, re-exported here
with ``register_head`` and ``to_probs``).

The backbone (``cfg.model``) is one of three kinds, all under one contract (docs/architecture.md,
"The backbone contract"):

- a timm name (the default): ``timm.create_model(name, num_classes=0)``;
- ``torchvision/<name>`` (``torchvision.models.list_models()``): torchvision's model with its
  classifier, the last ``nn.Linear``, replaced by ``nn.Identity``; ``--pretrained`` loads
  torchvision's own weights (torch's hub cache, ``$TORCH_HOME/hub/checkpoints``, else a
  download) and the pictures are normalised with those weights' ``transforms()``;
- a name registered with :func:`register_model`: any ``nn.Module`` factory of one's own.

A backbone maps a normalised float batch ``(n, 3, H, W)`` to pooled features ``(n, width)``;
``width`` is its ``num_features`` (timm's, set for torchvision's), else measured by one forward
pass. The head is built as ``HEADS[cfg.head].build(width)`` and called on those features.

Pretrained weights (``--pretrained``, ``--pretrained-tag``, ``--pretrained-file``) are found by
:func:`kit.pretrained.resolve_weights` and loaded here; the model keeps the record of what it
loaded in ``model.weights``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from kit._config_checks import registered_model, torchvision_name, torchvision_weights
from kit.config import Config
from kit.errors import KitError, UserCodeError
from kit.heads import HEADS, HeadSpec, MultiHead, head_spec, register_head, to_probs
from kit.pretrained import Weights, WeightsUnavailable, resolve_weights
from kit.registry import Registry, user_origin

__all__ = [
    "HEADS",
    "MODELS",
    "Classifier",
    "HeadSpec",
    "ModelSpec",
    "MultiHead",
    "Weights",
    "WeightsUnavailable",
    "backbone_width",
    "create_model",
    "register_head",
    "register_model",
    "resolve_weights",
    "to_probs",
]

Factory = TypeVar("Factory", bound=Callable[..., nn.Module])


@dataclass(frozen=True)
class ModelSpec:
    """A registered backbone: ``build()`` (``build(pretrained=True)`` with ``--pretrained``)
    returns an ``nn.Module`` giving ``(n, width)`` features; ``mean`` and ``std`` (0-1 scale)
    normalise its pictures when pretrained (the competition's statistics otherwise)."""

    build: Callable[..., nn.Module]
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None


#: model name (``cfg.model``) -> a backbone factory of one's own; see :func:`register_model`.
MODELS: Registry[ModelSpec] = Registry("model")


def register_model(
    name: str,
    *,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    overwrite: bool = False,
) -> Callable[[Factory], Factory]:
    """Decorator adding a backbone factory to :data:`MODELS`, so ``--model name`` builds it.

    The factory takes no argument (``pretrained=True`` with ``--pretrained``: it loads its own
    weights then, and ``mean`` / ``std`` must be those weights' normalisation) and returns a
    module mapping ``(n, 3, H, W)`` to ``(n, width)`` features; the head goes on top.
    """
    add = MODELS.register(name, overwrite=overwrite)  # checks the name now, not at decoration

    def decorate(build: Factory) -> Factory:
        add(ModelSpec(build, _triple(mean), _triple(std)))
        return build

    return decorate


def _triple(values: Any) -> tuple[float, float, float] | None:
    return None if values is None else tuple(float(v) for v in values)  # type: ignore[return-value]


class Classifier(nn.Module):
    """``head(backbone(x))``: the backbone gives ``(n, width)`` features, the head its
    outputs (``kit.heads``)."""

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


def backbone_width(backbone: nn.Module, image_size: tuple[int, int]) -> int:
    """The feature width of ``backbone``: its ``num_features`` (timm's ``head_hidden_size``
    first), else the width of its output for one ``image_size`` picture. ValueError when that
    output is not ``(1, width)``."""
    width = getattr(backbone, "head_hidden_size", None) or getattr(backbone, "num_features", None)
    if width:
        return int(width)
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        out = backbone(torch.zeros(1, 3, *image_size))
    backbone.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"the backbone returns {shape} for one {image_size[0]}x{image_size[1]} picture; a "
            "backbone returns pooled features (n, width): end it with a pooling and a flatten "
            "(docs/architecture.md, the backbone contract)"
        )
    return int(out.shape[1])


def _load_file(module: nn.Module, path: str, model: str) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"weights {path} do not fit model {model!r} ({str(err).splitlines()[0]}); "
            f"expected the state_dict of the model {model!r} builds"
        ) from err


def _strip_classifier(model: nn.Module, name: str) -> nn.Module:
    """``model`` without its classifier: the last ``nn.Linear`` becomes ``nn.Identity``."""
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"torchvision model {name!r} has no nn.Linear classifier to replace")
    parent_name, _, attr = linears[-1].rpartition(".")
    parent = model.get_submodule(parent_name)
    width = getattr(parent, attr).in_features
    setattr(parent, attr, nn.Identity())
    model.num_features = width
    return model


def _torchvision(cfg: Config, weights: Weights | None) -> nn.Module:
    from torchvision import models

    name = torchvision_name(cfg.model)
    model = models.get_model(name)  # random weights; the file is loaded below
    if weights is not None:
        _load_file(model, weights.file, cfg.model)
    return _strip_classifier(model, name)


def _registered(cfg: Config, spec: ModelSpec, weights: Weights | None) -> nn.Module:
    on = "pretrained=True" if cfg.pretrained else "no arguments"
    try:
        # a TypeError may be the missing pretrained argument: told apart below
        with MODELS.calling(cfg.model, on=on, passing=(TypeError,)):
            backbone = spec.build(pretrained=True) if cfg.pretrained else spec.build()
    except TypeError as err:
        if not cfg.pretrained:
            raise
        raise ValueError(
            f"model {cfg.model!r} was registered with a factory that takes no pretrained "
            f"argument ({err}); give it one (def factory(pretrained=False)), or train without "
            "--pretrained"
        ) from err
    if not isinstance(backbone, nn.Module):
        raise ValueError(
            f"the factory of model {cfg.model!r} returned {type(backbone).__name__}; "
            "expected an nn.Module"
        )
    if weights is not None:
        _load_file(backbone, weights.file, cfg.model)
    return backbone


def _timm(cfg: Config, weights: Weights | None) -> nn.Module:
    import timm

    if not timm.is_model(cfg.model):
        raise ValueError(
            f"unknown timm model {cfg.model!r}; list names with timm.list_models('*pattern*')"
        )
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
    return backbone


def create_model(cfg: Config, weights: Weights | None = None) -> Classifier:
    """The model of ``cfg``: the backbone ``cfg.model`` (timm, ``torchvision/<name>`` or
    registered with :func:`register_model`) plus ``cfg.head`` on its features.

    With ``cfg.pretrained`` or ``cfg.pretrained_file`` the backbone starts from the weights
    :func:`resolve_weights` finds (or from ``weights``, already resolved), without their
    classifier; ``model.weights`` records them. Fixed-size timm models (ViT, Swin) are built
    for ``cfg.image_size``. Unknown heads or models raise ValueError.
    """
    head = head_spec(cfg.head)
    spec = registered_model(cfg.model)
    if spec is None and torchvision_name(cfg.model) is not None:
        torchvision_weights(cfg.model, cfg.pretrained_tag)  # an unknown tag fails first
    if weights is None:
        weights = resolve_weights(cfg)
    if spec is not None:
        backbone = _registered(cfg, spec, weights)
    elif torchvision_name(cfg.model) is not None:
        backbone = _torchvision(cfg, weights)
    else:
        backbone = _timm(cfg, weights)
    width = backbone_width(backbone, tuple(cfg.image_size))
    with HEADS.calling(cfg.head, on=f"in_features={width} (model {cfg.model!r})"):
        built = head.build(width)
        if not isinstance(built, nn.Module):
            raise TypeError(f"returned {type(built).__name__}; expected a torch nn.Module")
    model = Classifier(backbone, built)
    model.weights = weights
    return model
