"""Test-time views: the registry :data:`TTA` of views of a batch of prepared, normalised
pictures (mirror image, small shifts, zoom in / out), and :func:`tta_views`, which combines
them (``"hflip+shift"``: every shift of the picture and of its mirror image). Validation in
training and inference average the probabilities of the views alike.

Every view keeps the batch's shape and none changes a picture's class, so a view's
probabilities need no inverting before they are averaged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from kit.registry import Registry, UnknownName

__all__ = ["TTA", "shift", "tta_views", "zoom"]


def _check_tta(value: Any, field: str | None, cfg: Any) -> None:
    """A TTA spec is one registered name or several joined by ``+`` (their product)."""
    if not isinstance(value, str):
        raise TypeError(f"a TTA spec is a string such as 'hflip+shift', got {value!r}")
    for name in value.split("+"):
        if name.strip() not in TTA:
            where = f"config field {field!r} is" if field else "unknown tta view"
            if value.strip() != name.strip():  # name the view inside the spec
                where = f"{where.removesuffix(' is')} is {value!r}: unknown view"
            raise UnknownName(TTA.unknown_message(name.strip(), where))


#: TTA name -> the views of a batch ``(n, 3, H, W)`` (the first is the batch itself).
TTA: Registry[Callable[[Any], list[Any]]] = Registry("tta", check=_check_tta)
TTA.register("none", lambda x: [x])
TTA.register("hflip", lambda x: [x, x.flip(3)])  # the mirror image: width is the last axis


def shift(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` moved ``dy`` pixels down and ``dx`` right, the edge pixels repeated into the gap."""
    pad = max(abs(dy), abs(dx))
    if pad == 0:
        return x
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")
    h, w = x.shape[-2:]
    return padded[..., pad - dy : pad - dy + h, pad - dx : pad - dx + w]


def zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """``x`` scaled by ``factor`` about its centre, cropped or edge-padded back to its size."""
    h, w = x.shape[-2:]
    sh, sw = max(1, round(h * factor)), max(1, round(w * factor))
    scaled = F.interpolate(x, size=(sh, sw), mode="bilinear", align_corners=False, antialias=True)
    if factor >= 1:
        top, left = (sh - h) // 2, (sw - w) // 2
        return scaled[..., top : top + h, left : left + w]
    top, left = (h - sh) // 2, (w - sw) // 2
    return F.pad(scaled, (left, w - sw - left, top, h - sh - top), mode="replicate")


@TTA.register("shift")
def _shifts(x: torch.Tensor) -> list[torch.Tensor]:
    """The picture and four copies moved by 4 % of its size (at least a pixel) each way."""
    d = max(1, round(0.04 * min(x.shape[-2:])))
    return [x, shift(x, d, 0), shift(x, -d, 0), shift(x, 0, d), shift(x, 0, -d)]


@TTA.register("scale")
def _scales(x: torch.Tensor) -> list[torch.Tensor]:
    """The picture, zoomed in by 10 % and out by 10 % (multi-scale at the input size)."""
    return [x, zoom(x, 1.1), zoom(x, 1 / 1.1)]


def tta_views(spec: str) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    """The views of a TTA spec: ``"hflip+shift"`` is every shift of the picture and of its
    mirror image (the product of the named views' lists)."""
    TTA.check(spec)
    names = [n.strip() for n in spec.split("+")]

    def views(x: torch.Tensor) -> list[torch.Tensor]:
        out = [x]
        for name in names:
            out = [v for y in out for v in TTA.get(name)(y)]
        return out

    return views
