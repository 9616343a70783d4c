"""Contact sheets: grids of pictures with a caption under each, drawn with matplotlib's Figure
API (no pyplot: no display, no global state), and the mistakes sheet of a run.

The mistakes sheet shows the validation pictures the model got wrong most confidently (the
highest probability given to a wrong class first), with the true and the predicted class
under each: what a teammate looks at to see what the model gets wrong (docs/run-folder.md,
``val_mistakes.png``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

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


def picture_sheet(
    cells: Sequence[tuple[str | os.PathLike[str] | None, str]],
    path: str | os.PathLike[str],
    columns: int = 6,
    title: str | None = None,
) -> Path:
    """A PNG grid of ``(picture file, caption)`` cells; a missing file (None or not found) is
    drawn as "picture not found". Written atomically."""
    cols = min(columns, max(1, len(cells)))
    lines = max(1, -(-len(cells) // cols))
    head = 0.4 if title else 0.0
    from matplotlib.figure import Figure  # with the first sheet, not with the commands

    fig = Figure(figsize=(1.9 * cols, 2.6 * lines + head))
    axes = fig.subplots(lines, cols, squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, (file, caption) in zip(axes.ravel(), cells, strict=False):
        if file is not None and Path(file).is_file():
            with Image.open(file) as img:
                ax.imshow(img.convert("RGB"))
        else:
            ax.text(0.5, 0.5, "picture not found", ha="center", va="center", fontsize=8)
        ax.set_title(caption, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9, y=1 - 0.1 / (2.6 * lines + head), va="top")
    if not cells:
        axes[0, 0].text(0.5, 0.5, "nothing to show", ha="center", va="center", fontsize=9)
    # fixed margins, not tight_layout: as readable, and a third of the drawing time
    height = 2.6 * lines + head  # inches; the captions above each picture take 0.45
    top = 1 - (0.45 + head) / height
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=top, wspace=0.08, hspace=0.5)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=72)
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
