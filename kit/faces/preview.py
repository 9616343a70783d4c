"""A sample grid of pictures with their face boxes and crops drawn, to see the crop worked."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kit.data.dataset import load_rgb
from kit.data.pictures import PreparedLoader
from kit.io import atomic_write
from kit.transforms import crop_rect

__all__ = ["preview"]


def _draw(ax: Any, image: np.ndarray, face: Any, crop: Any, label: str, score: Any) -> None:
    from matplotlib.patches import Rectangle

    ax.imshow(image)
    if face is not None:
        x0, y0, x1, y1 = face
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="lime", lw=1.5))
    x0, y0, x1, y1 = crop
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="yellow", lw=1, ls="--"))
    found = "face" if score is None else f"face {score:.2f}"  # the detector's confidence
    ax.set_title(f"{label}{found}" if face is not None else f"{label}no face: centre", fontsize=7)


def preview(
    out: str | os.PathLike[str],
    groups: dict[str, Sequence[str]],
    loader: PreparedLoader,
) -> Path:
    """Write a PNG grid to ``out``: for each group (``{"train": paths, "eval": paths}``) a row
    of pictures with the face box (green; the detector's confidence above, where it gives
    one) and the crop (yellow, dashed), and a row of the prepared network inputs. Written
    atomically."""
    from matplotlib.figure import Figure

    columns = max(1, max(len(p) for p in groups.values()))
    fig = Figure(figsize=(1.6 * columns, 3.6 * len(groups)), dpi=100)
    axes = fig.subplots(2 * len(groups), columns, squeeze=False)
    for g, (label, paths) in enumerate(groups.items()):
        for c in range(columns):
            top, bottom = axes[2 * g][c], axes[2 * g + 1][c]
            top.set_axis_off()
            bottom.set_axis_off()
            if c >= len(paths):
                continue
            image, face = load_rgb(paths[c]), loader.box(paths[c])
            cfg = loader.cfg
            rect = crop_rect(
                image.shape,
                face,
                crop_mode=cfg.crop_mode,
                crop=cfg.crop,
                image_size=cfg.image_size,
                face_margin=cfg.face_margin,
            )
            score = None if loader.faces is None else loader.faces.scores.get(paths[c])
            _draw(top, image, face, rect, f"{label}: " if c == 0 else "", score)
            bottom.imshow(loader(paths[c]))
    fig.tight_layout()
    return atomic_write(out, lambda fh: fig.savefig(fh, format="png"), mode="wb")
