"""A confusion-matrix picture drawn with PIL only (no plotting library needed).

Layout, for ``n`` classes and a cell of ``cell`` pixels: the grid starts at ``(LEFT, TOP)``
and the image is ``LEFT + n * cell + RIGHT`` wide and ``TOP + n * cell + BOTTOM`` high.
Cell colour is the row-normalised count (share of the true class), white to dark blue; each
cell shows its count; rows are true classes, columns predictions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from kit.io import atomic_path
from kit.labels import class_name

__all__ = ["BOTTOM", "CELL", "LEFT", "RIGHT", "TOP", "confusion_png"]

CELL, LEFT, TOP, RIGHT, BOTTOM = 36, 200, 200, 24, 64
_EMPTY, _FULL = np.array([255, 255, 255]), np.array([8, 48, 107])
_GRID, _SEPARATOR = (210, 210, 210), (60, 60, 60)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def _colour(share: float) -> tuple[int, int, int]:
    return tuple(round(c) for c in _EMPTY + share * (_FULL - _EMPTY))


def _centred(draw: ImageDraw.ImageDraw, box: tuple[int, int, int, int], text: str, **kw) -> None:
    left, top, right, bottom = draw.textbbox((0, 0), text, font=kw["font"])
    x = (box[0] + box[2] - (right - left)) / 2 - left
    y = (box[1] + box[3] - (bottom - top)) / 2 - top
    draw.text((x, y), text, **kw)


def _column_labels(img: Image.Image, names: Sequence[str], cell: int, font) -> None:
    """Class names above the grid, rotated to read bottom-up."""
    strip = Image.new("RGB", (TOP - 8, len(names) * cell), "white")
    draw = ImageDraw.Draw(strip)
    for i, name in enumerate(names):
        bbox = draw.textbbox((0, 0), name, font=font)
        y = i * cell + (cell - (bbox[3] - bbox[1])) / 2 - bbox[1]
        draw.text((4, y), name, fill="black", font=font)
    img.paste(strip.rotate(90, expand=True), (LEFT, 4))


def confusion_png(
    confusion: Sequence[Sequence[int]] | np.ndarray,
    path: str | os.PathLike[str],
    *,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
    cell: int = CELL,
) -> Path:
    """Draw the ``(n, n)`` count matrix ``confusion`` (rows true) to a PNG at ``path``."""
    cm = np.asarray(confusion)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion must be a square matrix, got shape {cm.shape}")
    n = len(cm)
    names = (
        list(class_names) if class_names is not None else [f"{c} {class_name(c)}" for c in range(n)]
    )
    if len(names) != n:
        raise ValueError(f"got {len(names)} class names for {n} classes")
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    img = Image.new("RGB", (LEFT + n * cell + RIGHT, TOP + n * cell + BOTTOM), "white")
    draw = ImageDraw.Draw(img)
    small, label = _font(max(8, cell // 3)), _font(max(9, cell // 3 + 1))
    for i in range(n):
        for j in range(n):
            x, y = LEFT + j * cell, TOP + i * cell
            box = (x, y, x + cell, y + cell)
            draw.rectangle(box, fill=_colour(share[i, j]), outline=_GRID)
            ink = "white" if share[i, j] > 0.5 else ((150, 150, 150) if cm[i, j] == 0 else "black")
            _centred(draw, box, str(int(cm[i, j])), fill=ink, font=small)
        bbox = draw.textbbox((0, 0), names[i], font=label)
        ty = TOP + i * cell + (cell - (bbox[3] - bbox[1])) / 2 - bbox[1]
        draw.text((LEFT - 8 - (bbox[2] - bbox[0]), ty), names[i], fill="black", font=label)
    # Heavier lines every 6 classes: the mask groups of the 18-class layout.
    for k in range(0, n + 1, 6 if n == 18 else n):
        draw.line((LEFT + k * cell, TOP, LEFT + k * cell, TOP + n * cell), fill=_SEPARATOR, width=2)
        draw.line((LEFT, TOP + k * cell, LEFT + n * cell, TOP + k * cell), fill=_SEPARATOR, width=2)
    _column_labels(img, names, cell, label)
    draw.text((8, 8), "rows: true\ncolumns: predicted", fill="black", font=label)
    if title:
        draw.text((LEFT, TOP + n * cell + 12), title, fill="black", font=_font(14))
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")
    return Path(path)
