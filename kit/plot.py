"""Pictures a person looks at: plots drawn with matplotlib, contact sheets with Pillow.

Plots (the confusion matrix, one run's per-epoch curves, several runs overlaid, the lr range
test): each ``*_figure`` returns a matplotlib ``Figure`` made with ``Figure()``, not pyplot, so
it renders with Agg whatever backend the session chose (no display, no global figure state);
each ``*_png`` writes it atomically. Sheets: :func:`picture_sheet`, and :func:`mistakes_sheet`,
the validation pictures a run got wrong most confidently (``val_mistakes.png``).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from kit.data._common import IMAGE_EXTENSIONS
from kit.io import atomic_path
from kit.labels import class_name

if TYPE_CHECKING:  # matplotlib and scikit-learn load with the first picture: the ledger and
    # the commands that can draw answer without them
    from matplotlib.figure import Figure

__all__ = [
    "CURVE_PANELS",
    "MISTAKES_SHOWN",
    "confusion_figure",
    "confusion_png",
    "curves_figure",
    "curves_png",
    "lr_find_figure",
    "lr_find_png",
    "mistakes_sheet",
    "overlay_png",
    "picture_sheet",
    "save_png",
    "train_picture_files",
    "worst_mistakes",
]

#: panel title -> the metrics.csv columns drawn in it (missing columns are skipped).
CURVE_PANELS: dict[str, tuple[str, ...]] = {
    "loss": ("train_loss", "val_loss"),
    "val macro F1": ("val_macro_f1",),
    "val F1 per head": ("val_f1_mask", "val_f1_gender", "val_f1_age"),
    "learning rate": ("lr",),
}

Rows = Sequence[Mapping[str, Any]]


def save_png(fig: Figure, path: str | os.PathLike[str]) -> Path:
    with atomic_path(path) as tmp:  # zlib's fastest level: a third of the default's time
        fig.savefig(tmp, format="png", dpi=100, pil_kwargs={"compress_level": 1})
    return Path(path)


def confusion_figure(
    confusion: Sequence[Sequence[int]] | np.ndarray,
    *,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """The ``(n, n)`` count matrix (rows true), coloured by row share, each non-empty cell its
    count; an empty cell is left blank."""
    cm = np.asarray(confusion)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion must be a square matrix, got shape {cm.shape}")
    n = len(cm)
    names = list(class_names) if class_names is not None else [class_name(c) for c in range(n)]
    if len(names) != n:
        raise ValueError(f"got {len(names)} class names for {n} classes")
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    from matplotlib.figure import Figure
    from sklearn.metrics import ConfusionMatrixDisplay

    fig = Figure(figsize=(3 + 0.55 * n, 2.5 + 0.5 * n))
    ax = fig.add_subplot()
    # colour by row share, but write counts: draw the shares, then relabel the cells
    disp = ConfusionMatrixDisplay(share, display_labels=names)
    disp.plot(ax=ax, cmap="Blues", colorbar=False, xticks_rotation="vertical", values_format=".0f")
    disp.im_.set_clim(0, 1)  # a full row is dark blue, whatever the largest share
    for (i, j), text in np.ndenumerate(disp.text_):
        if cm[i, j] == 0:  # a blank reads as zero, and writing each glyph run is most of the
            text.remove()  # drawing: a small run's matrix is mostly empty cells
            continue
        text.set_text(str(int(cm[i, j])))
        text.set_fontsize(8)
        text.set_color("white" if share[i, j] > 0.5 else "black")
        text.set_in_layout(False)  # inside the axes: tight_layout need not measure them all
    if n == 18:  # heavier lines between the mask groups of the 18-class layout
        for k in (5.5, 11.5):
            ax.axhline(k, color="0.25", lw=1.5)
            ax.axvline(k, color="0.25", lw=1.5)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if title:
        ax.set_title(title)
    fig.tight_layout()  # the class names' width decides the margins
    # tight_layout leaves a placeholder layout engine behind, and savefig then lays every text
    # out in a pass of its own before drawing: a quarter of the time, for the same picture
    fig.set_layout_engine(None)
    return fig


def confusion_png(
    confusion: Sequence[Sequence[int]] | np.ndarray,
    path: str | os.PathLike[str],
    *,
    class_names: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    return save_png(confusion_figure(confusion, class_names=class_names, title=title), path)


_STYLES = ("-", "--", ":")


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _draw_panels(axes: Sequence[Any], runs: Mapping[str, Rows]) -> None:
    """One run: a colour per column. Several: a colour per run, a line style per column."""
    from matplotlib.ticker import MaxNLocator

    overlay = len(runs) > 1
    for ax, (title, columns) in zip(axes, CURVE_PANELS.items(), strict=True):
        for k, (label, rows) in enumerate(runs.items()):
            epochs = [r["epoch"] for r in rows]
            for c, col in enumerate(columns):
                if not rows or col not in rows[0] or all(_missing(r[col]) for r in rows):
                    continue  # e.g. a per-task run has no 18-class macro F1
                style = {"color": f"C{k}", "ls": _STYLES[c % 3]} if overlay else {"color": f"C{c}"}
                name = f"{label} {col}" if overlay and len(columns) > 1 else (label or col)
                ax.plot(epochs, [r[col] for r in rows], marker="o", ms=3, label=name, **style)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
    if any(r.get("lr") for rows in runs.values() for r in rows):
        axes[-1].set_yscale("log")


def curves_figure(runs: Mapping[str, Rows], title: str | None = None) -> Figure:
    """The :data:`CURVE_PANELS`, one line per run and column; ``runs``: label -> epoch rows."""
    if not runs:
        raise ValueError("no runs to plot")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 7))
    axes = fig.subplots(2, 2)
    _draw_panels(list(axes.flat), runs if len(runs) > 1 else {"": next(iter(runs.values()))})
    if title:
        fig.suptitle(title)
    # fixed margins, not tight_layout: the panels' labels are short numbers whatever the runs,
    # and tight_layout measured every text of the four panels, a third of the drawing time
    top = 0.9 if title else 0.95
    fig.subplots_adjust(left=0.07, right=0.985, bottom=0.085, top=top, wspace=0.18, hspace=0.35)
    return fig


def curves_png(rows: Rows, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """One run's per-epoch curves (its ``metrics.csv`` rows)."""
    return save_png(curves_figure({"": rows}, title), path)


def overlay_png(runs: Mapping[str, Rows], path: str | os.PathLike[str]) -> Path:
    return save_png(curves_figure(runs, f"{len(runs)} runs"), path)


def lr_find_figure(
    lrs: Sequence[float],
    losses: Sequence[float],
    smoothed: Sequence[float],
    suggested: float | None,
    title: str | None = None,
) -> Figure:
    """A learning-rate range test: the loss of each step (faint) and its smoothed curve
    against the learning rate on a log axis, the suggested rate marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(lrs, losses, color="0.75", linewidth=0.8, label="loss per step")
    ax.plot(lrs, smoothed, color="C0", linewidth=1.6, label="smoothed")
    if suggested is not None:
        ax.axvline(suggested, color="C3", linestyle="--", label=f"suggested lr {suggested:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    finite = [v for v in smoothed if math.isfinite(v)]
    if finite:  # the blow-up would squash the part worth reading
        raw = [v for v in losses[: int(np.argmin(smoothed)) + 1] if math.isfinite(v)]
        low = min([*finite, *raw])
        ax.set_ylim(low - 0.1 * abs(low), max(finite[0], low) * 1.5 + 1e-9)
    ax.legend(loc="upper left")
    if title:
        ax.set_title(title)
    return fig


def lr_find_png(
    lrs: Sequence[float],
    losses: Sequence[float],
    smoothed: Sequence[float],
    suggested: float | None,
    path: str | os.PathLike[str],
    title: str | None = None,
) -> Path:
    return save_png(lr_find_figure(lrs, losses, smoothed, suggested, title), path)


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
            with Image.open(file) as img:  # scaled to fit _BOX, up or down, aspect kept
                img.draft("RGB", _BOX)  # a JPEG decodes at a fraction of its size: cheaper
                pic = ImageOps.contain(img.convert("RGB"), _BOX, Image.Resampling.BICUBIC)
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
