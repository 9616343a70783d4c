"""The loss of a three-head model: one loss per head, summed with weights."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from kit.labels import HEAD_SIZES, TASKS, decode
from kit.losses.registry import build_loss

__all__ = ["MultiHeadLoss", "build_multihead_loss"]


def _same_heads(what: str, got: Mapping[str, Any], expected: list[str]) -> None:
    missing = [h for h in expected if h not in got]
    extra = [h for h in got if h not in expected]
    if missing or extra:
        raise ValueError(
            f"{what} has heads {list(got)}; expected {expected}"
            + (f" (missing {missing})" if missing else "")
            + (f" (unexpected {extra})" if extra else "")
        )


class MultiHeadLoss(nn.Module):
    """``sum_h weights[h] * losses[h](outputs[h], targets[h])``; weights default to 1.

    ``outputs`` and ``targets`` must hold exactly the heads of ``losses``.
    """

    def __init__(
        self, losses: Mapping[str, nn.Module], weights: Mapping[str, float] | None = None
    ) -> None:
        super().__init__()
        if not losses:
            raise ValueError("MultiHeadLoss needs at least one head")
        heads = list(losses)
        weights = dict(weights or {})
        unknown = [h for h in weights if h not in losses]
        if unknown:
            raise ValueError(f"weights name heads {unknown} that have no loss; heads: {heads}")
        self.losses = nn.ModuleDict(losses)
        self.weights = {h: float(weights.get(h, 1.0)) for h in heads}

    def parts(
        self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Each head's unweighted loss, for logging."""
        heads = list(self.losses)
        _same_heads("outputs", outputs, heads)
        _same_heads("targets", targets, heads)
        return {h: self.losses[h](outputs[h], targets[h]) for h in heads}

    def forward(
        self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        parts = self.parts(outputs, targets)
        return sum(self.weights[h] * loss for h, loss in parts.items())

    def extra_repr(self) -> str:
        return f"weights={self.weights}"


def _head_labels(labels: Any) -> dict[str, Any]:
    """Per-head training labels from a dict of them or from 18-way class ids."""
    if labels is None:
        return {}
    if isinstance(labels, Mapping):
        return dict(labels)
    arr = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels)
    return dict(zip(TASKS, decode(arr), strict=True))


def build_multihead_loss(
    specs: str | Mapping[str, str],
    weights: Mapping[str, float] | None = None,
    labels: Any = None,
    **kwargs_per_head: Mapping[str, Any],
) -> MultiHeadLoss:
    """A :class:`MultiHeadLoss` over the heads ``mask`` (3), ``gender`` (2), ``age`` (3).

    ``specs``: one :func:`build_loss` spec per head, or one string for all heads.
    ``labels``: training labels, as ``{head: ids}`` or as 18-way class ids (decoded), used by
    ``class_weights="balanced"``. Keyword arguments are per head, e.g.
    ``age={"gamma": 2.0, "class_weights": "balanced"}``.
    """
    heads = list(TASKS)
    if isinstance(specs, str):
        specs = dict.fromkeys(heads, specs)
    _same_heads("specs", specs, heads)
    unknown = [h for h in kwargs_per_head if h not in heads]
    if unknown:
        raise ValueError(f"keyword arguments {unknown} are not heads; per-head keywords: {heads}")
    for head, kw in kwargs_per_head.items():
        if not isinstance(kw, Mapping):
            raise TypeError(f"keywords for head {head!r} must be a dict, got {kw!r}")
    head_labels = _head_labels(labels)
    losses = {
        h: build_loss(
            specs[h],
            num_classes=HEAD_SIZES[h],
            labels=head_labels.get(h),
            **kwargs_per_head.get(h, {}),
        )
        for h in heads
    }
    return MultiHeadLoss(losses, weights)
