"""Contact sheets: grids of pictures with a caption above each, drawn with Pillow, and the
mistakes sheet of a run.

The mistakes sheet shows the validation pictures the model got wrong most confidently (the
highest probability given to a wrong class first), with the true and the predicted class
under each: what a teammate looks at to see what the model gets wrong (docs/run-folder.md,
``val_mistakes.png``).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from kit.data._common import IMAGE_EXTENSIONS
from kit.io import atomic_path
from kit.labels import class_name

__all__ = [
    "MISTAKES_SHOWN",
    "mistakes_sheet",
    "picture_sheet",
    "train_picture_files",
    "worst_mistakes",
]

#: Pictures on a mistakes sheet.
MISTAKES_SHOWN = 24

#: The box each picture is scaled into (width, height: 3:4, the competition's pictures), and the
#: pixel sizes of the captions' and the title's font, and of the gap between cells.
_BOX = (132, 176)
_CAPTION_PX, _TITLE_PX, _GAP = 11, 13, 10


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont:
    """matplotlib's DejaVu Sans, the font of kit's other pictures: Pillow's own default font
    has no accented letters, which a run's name may have."""
    from matplotlib import get_data_path  # matplotlib installs the font; nothing else loads

    return ImageFont.truetype(str(Path(get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")), size)


def _picture(file: str | os.PathLike[str]) -> Image.Image:
    """``file`` as RGB, scaled to fit ``_BOX`` (up or down, aspect kept)."""
    with Image.open(file) as img:
        img.draft("RGB", _BOX)  # a JPEG decodes at a fraction of its size: cheaper
        return ImageOps.contain(img.convert("RGB"), _BOX, Image.Resampling.BICUBIC)


def picture_sheet(
    cells: Sequence[tuple[str | os.PathLike[str] | None, str]],
    path: str | os.PathLike[str],
    columns: int = 6,
    title: str | None = None,
) -> Path:
    """A PNG grid of ``(picture file, caption)`` cells, each caption above its picture; a
    missing file (None or not found) is drawn as "picture not found". Written atomically.

    Drawn with Pillow, not matplotlib: pasting pictures and writing lines of text is all a sheet
    needs, and two dozen matplotlib axes cost most of a tiny run's end (issue #28)."""
    font, head_font = _font(_CAPTION_PX), _font(_TITLE_PX)
    captions = [caption.split("\n") for _, caption in cells]
    line = sum(font.getmetrics())
    lines = max(map(len, captions), default=0)
    widest = max((font.getlength(text) for c in captions for text in c), default=0)
    cell_w = max(_BOX[0], math.ceil(widest)) + _GAP
    cell_h = lines * line + _GAP // 2 + _BOX[1] + 2 * _GAP  # a wider gap between rows
    cols = min(columns, max(1, len(cells)))
    rows = max(1, -(-len(cells) // cols))
    head = sum(head_font.getmetrics()) + _GAP if title else 0
    width = max(cols * cell_w, math.ceil(head_font.getlength(title or "")) + _GAP) + _GAP
    sheet = Image.new("RGB", (width, _GAP + head + rows * cell_h), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((width / 2, _GAP), title, fill="black", font=head_font, anchor="ma")
    left = (width - cols * cell_w) / 2  # the cells centred under a title wider than them
    for k, ((file, _), caption) in enumerate(zip(cells, captions, strict=True)):
        x = left + (k % cols) * cell_w + cell_w / 2  # the cell's centre line
        y = _GAP + head + (k // cols) * cell_h
        for i, text in enumerate(caption):
            draw.text((x, y + i * line), text, fill="black", font=font, anchor="ma")
        box_w, box_h = _BOX
        top = y + lines * line + _GAP // 2
        if file is not None and Path(file).is_file():
            pic = _picture(file)
            sheet.paste(pic, (round(x - pic.width / 2), top + (box_h - pic.height) // 2))
        else:
            box = (round(x - box_w / 2), top, round(x + box_w / 2), top + box_h)
            draw.rectangle(box, outline=(200, 200, 200))
            draw.text(
                (x, top + box_h / 2), "picture not found", fill="black", font=font, anchor="mm"
            )
    if not cells:
        where = (width / 2, _GAP + head + cell_h / 2)
        draw.text(where, "nothing to show", fill="black", font=_font(_TITLE_PX), anchor="mm")
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG", compress_level=1)  # a quarter of the default's time
    return Path(path)


def worst_mistakes(truth: np.ndarray, probs: np.ndarray, top: int = MISTAKES_SHOWN) -> np.ndarray:
    """Row indices of the ``top`` most confident wrong predictions: rows whose argmax is not
    ``truth``, by the probability of the predicted class, highest first (ties: row order)."""
    truth, probs = np.asarray(truth), np.asarray(probs)
    pred = probs.argmax(1)
    wrong = np.flatnonzero(pred != truth)
    confidence = probs[wrong, pred[wrong]]
    return wrong[np.argsort(-confidence, kind="stable")][:top]


def mistakes_sheet(
    files: Sequence[str | os.PathLike[str] | None],
    truth: np.ndarray,
    probs: np.ndarray,
    path: str | os.PathLike[str],
    top: int = MISTAKES_SHOWN,
    title: str | None = None,
) -> Path:
    """The mistakes sheet of validation rows (``files[i]`` is row i's picture): the
    :func:`worst_mistakes`, each captioned with its true and predicted class names."""
    pred = np.asarray(probs).argmax(1)
    cells = [
        (
            files[i],
            f"true {class_name(int(truth[i]))}\npred {class_name(int(pred[i]))}\n"
            f"p = {probs[i, pred[i]]:.3f}",
        )
        for i in worst_mistakes(truth, probs, top)
    ]
    return picture_sheet(cells, path, title=title)


def train_picture_files(data_dir: str | os.PathLike[str] | None) -> Mapping[str, str]:
    """``image_id`` (``<person folder>/<stem>``) -> picture file under ``data_dir``'s
    ``train/images``; empty when the folder is not there."""
    images = Path(data_dir or "") / "train" / "images"
    if data_dir is None or not images.is_dir():
        return {}
    return {
        f"{f.parent.name}/{f.stem}": str(f)
        for f in images.glob("*/*")
        if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in IMAGE_EXTENSIONS
    }
