"""Test-time views (docs/techniques.md, "Test-time views"): the registry :data:`TTA` of views
of a batch of prepared, normalised pictures, and :func:`tta_views`, which combines them
(``"hflip+shift"``: every shift of the picture and of its mirror image). Every view keeps the
batch's shape and the picture's class, so the views' probabilities are averaged as they are.

A :class:`CropViews` entry (``center_face``) is other crops of the original pictures: the
forward pass (:func:`kit.train.forward.predict_frame`) reads the rows again under each crop
mode the run does not use itself (:func:`crop_sources`). A picture without the face box a crop
needs keeps the run's own view there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kit.config import Config
from kit.data.pictures import PreparedLoader
from kit.faces import other_crop
from kit.registry import Registry, UnknownName
from kit.transforms import CROP_MODES

__all__ = [
    "TTA",
    "CropSource",
    "CropViews",
    "Views",
    "crop_sources",
    "shift",
    "tta_views",
    "zoom",
]


def _check_tta(value: Any, field: str | None, cfg: Config | None) -> None:
    """A TTA spec is one registered name or several joined by ``+`` (their product)."""
    if not isinstance(value, str):
        raise TypeError(f"a TTA spec is a string such as 'hflip+shift', got {value!r}")
    for name in value.split("+"):
        if name.strip() not in TTA:
            where = f"config field {field!r} is" if field else "unknown tta view"
            if value.strip() != name.strip():  # name the view inside the spec
                where = f"{where.removesuffix(' is')} is {value!r}: unknown view"
            raise UnknownName(TTA.unknown_message(name.strip(), where))


@dataclass(frozen=True)
class CropViews:
    """Views that are crops of the original pictures: one per crop mode of ``modes``
    (:data:`kit.transforms.CROP_MODES`), the run's own mode being the prepared batch itself. As a
    view of the prepared batch alone it is that batch (the other crops come from the loader)."""

    modes: tuple[str, ...]

    def __post_init__(self) -> None:
        for mode in self.modes:
            CROP_MODES.get(mode)  # an unknown mode fails at registration, by name

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [x]


#: TTA name -> the views of a batch ``(n, 3, H, W)`` (the first is the batch itself), or a
#: :class:`CropViews` (other crops of the original pictures).
TTA: Registry[Callable[[Any], list[Any]]] = Registry("tta", check=_check_tta)
TTA.register("none", lambda x: [x])
TTA.register("hflip", lambda x: [x, x.flip(3)])  # the mirror image: width is the last axis
# the centre crop and, where the picture has a face box, the face crop (--crop-mode face)
TTA.register("center_face", CropViews(("center", "face")))


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


@dataclass(frozen=True)
class Views:
    """A TTA spec resolved: the crop modes its :class:`CropViews` name (``crops``) and the
    product of its other views (``names``). ``views(x, others)`` lists every view of the batch
    ``x`` and of each other-crop batch in ``others`` (the crops of :meth:`other_crops`)."""

    crops: tuple[str, ...]
    names: tuple[str, ...]

    def other_crops(self, own: str) -> tuple[str, ...]:
        """The crop modes to read besides the run's own ``own``, in order."""
        return tuple(m for m in self.crops if m != own)

    def __call__(self, x: torch.Tensor, others: Sequence[torch.Tensor] = ()) -> list[torch.Tensor]:
        out = [x, *others]
        for name in self.names:
            out = [v for y in out for v in _views(name, y)]
        return out


def _views(name: str, x: torch.Tensor) -> list[torch.Tensor]:
    """The views of TTA entry ``name`` of the batch ``x``: a list of batches of its shape."""
    with TTA.calling(name, on=f"a batch of shape {tuple(x.shape)}"):
        views = TTA.get(name)(x)
        shapes = [tuple(getattr(v, "shape", ())) for v in views]
        if not isinstance(views, (list, tuple)) or any(s != tuple(x.shape) for s in shapes):
            raise TypeError(
                f"returned {type(views).__name__} of shapes {shapes}; expected a list of "
                f"batches of the input's shape {tuple(x.shape)}"
            )
    return list(views)


def tta_views(spec: str) -> Views:
    """The views of a TTA spec: ``"hflip+shift"`` is every shift of the picture and of its
    mirror image (the product of the named views' lists); ``"center_face+hflip"`` the centre
    and the face crop, each also mirrored. Crop views come first whatever their place in the
    spec, as every other view applies to each crop alike."""
    TTA.check(spec)
    names = [n.strip() for n in spec.split("+")]
    crops: list[str] = []
    for name in names:
        entry = TTA.get(name)
        if isinstance(entry, CropViews):
            crops += [m for m in entry.modes if m not in crops]
    pixels = tuple(n for n in names if not isinstance(TTA.get(n), CropViews))
    return Views(tuple(crops), pixels)


@dataclass(frozen=True)
class CropSource:
    """The rows of a frame under another crop mode: ``cfg`` (the run's with that
    ``crop_mode``), ``loader`` (path -> the picture prepared under it) and ``found`` (per row:
    whether the crop applies; where it does not, the run's own view stands in)."""

    cfg: Config
    loader: PreparedLoader
    found: np.ndarray

    def view(self, batch: torch.Tensor, own: torch.Tensor, start: int) -> torch.Tensor:
        """``batch`` (rows ``start:start + n`` under this crop), the run's ``own`` view of the
        rows where the crop does not apply."""
        keep = torch.as_tensor(self.found[start : start + len(own)], device=own.device)
        return torch.where(keep.view(-1, 1, 1, 1), batch.to(own.device), own)


def crop_sources(
    views: Views, cfg: Config, data_dir: str | os.PathLike[str], paths: Sequence[str]
) -> list[CropSource]:
    """The :class:`CropSource` of each crop mode ``views`` reads besides ``cfg.crop_mode``, for
    the pictures ``paths`` of a run on ``data_dir``. Where this crop or the run's own needs a
    face box (kit.faces: stored per data folder, detected once), it applies to the pictures
    that have one; else to every picture."""
    out = []
    for mode in views.other_crops(cfg.crop_mode):
        loader, applies = other_crop(cfg, mode, data_dir, paths, progress=False)
        found = np.array([os.fspath(p) in applies for p in paths], dtype=bool)
        out.append(CropSource(loader.cfg, loader, found))
    return out
