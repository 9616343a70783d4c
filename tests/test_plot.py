"""kit.plot: the confusion matrix (class names, counts, row-share colours) and the curves."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kit.labels import class_name
from kit.plot import (
    CURVE_PANELS,
    confusion_figure,
    confusion_png,
    curves_figure,
    curves_png,
    overlay_png,
)


def _rows(n: int, scale: float = 1.0) -> list[dict[str, float]]:
    return [
        {
            "epoch": e,
            "train_loss": scale / e,
            "val_loss": 1.5 * scale / e,
            "val_macro_f1": 0.1 * e,
            "val_accuracy": 0.12 * e,
            "val_f1_mask": 0.2 * e,
            "val_f1_gender": 0.15 * e,
            "val_f1_age": 0.05 * e,
            "lr": 1e-3 / e,
            "seconds": 1.0,
        }
        for e in range(1, n + 1)
    ]


def test_confusion_shows_class_names_counts_and_row_shares():
    cm = np.zeros((18, 18), int)
    cm[0, 0] = 5  # row 0 entirely on the diagonal
    cm[1, 1], cm[1, 2] = 1, 3  # row 1: a quarter / three quarters
    fig = confusion_figure(cm, title="t")
    ax = fig.axes[0]
    names = [class_name(c) for c in range(18)]
    assert [t.get_text() for t in ax.get_yticklabels()] == names
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    # each non-empty cell writes its count at its place; an empty cell writes nothing
    written = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    assert {cell: t.get_text() for cell, t in written.items()} == {
        (0, 0): "5",
        (1, 1): "1",
        (1, 2): "3",
    }
    assert written[0, 0].get_color() == "white" and written[1, 1].get_color() == "black"
    shares = np.asarray(ax.images[0].get_array())
    assert shares[0, 0] == 1.0 and shares[1, 1] == 0.25 and shares[1, 2] == 0.75
    assert shares[5].sum() == 0  # an empty row stays white, no division by zero
    assert ax.images[0].get_clim() == (0, 1)
    assert ax.get_title() == "t" and ax.get_ylabel() == "true"


def test_confusion_png_is_a_png_and_checks_its_input(tmp_path):
    path = confusion_png(np.eye(18, dtype=int), tmp_path / "cm.png")
    with Image.open(path) as img:
        assert img.format == "PNG" and min(img.size) > 500
    assert not list(tmp_path.glob(".*.tmp"))
    with pytest.raises(ValueError, match="square matrix"):
        confusion_png(np.zeros((2, 3)), tmp_path / "x.png")
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        confusion_png(np.eye(3), tmp_path / "x.png", class_names=["a", "b"])


def test_curves_have_every_panel_with_the_metrics():
    rows = _rows(4)
    fig = curves_figure({"": rows})
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == list(CURVE_PANELS)
    for ax, columns in zip(axes, CURVE_PANELS.values(), strict=True):
        assert [line.get_label() for line in ax.lines] == list(columns)
        for line, col in zip(ax.lines, columns, strict=True):
            assert list(line.get_xdata()) == [1, 2, 3, 4]
            assert list(line.get_ydata()) == [r[col] for r in rows]
    assert axes[-1].get_yscale() == "log"


def test_overlay_labels_each_run(tmp_path):
    fig = curves_figure({"a": _rows(3), "b": _rows(2, 2.0)})
    f1 = fig.axes[1]
    assert [line.get_label() for line in f1.lines] == ["a", "b"]
    assert len(f1.lines[1].get_xdata()) == 2
    assert [line.get_label() for line in fig.axes[0].lines][:2] == ["a train_loss", "a val_loss"]
    for path in (
        overlay_png({"a": _rows(3), "b": _rows(2)}, tmp_path / "o.png"),
        curves_png(_rows(3), tmp_path / "c.png"),
    ):
        with Image.open(path) as img:
            assert img.format == "PNG"
    with pytest.raises(ValueError, match="no runs"):
        curves_figure({})
