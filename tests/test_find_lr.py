"""``--find-lr``: the range test on the fixture falls then blows up, its suggestion lies on the
falling part, and it writes its curve beside the runs folder, never a run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kit.find_lr import find_lr, smooth, suggest
from kit.plot import lr_find_figure
from kit.recipe import main as recipe_main


def _quiet(line: str) -> None:
    pass


def test_suggest_picks_the_steepest_fall_before_the_minimum() -> None:
    lrs = list(np.logspace(-6, 1, 70))
    x = np.log10(lrs)
    # flat, a fall centred at lr 1e-3, a floor, then a blow-up after 1e-1
    loss = 3 - 2 / (1 + np.exp(-(x + 3) * 3)) + np.where(x > -1, (x + 1) * 20, 0)
    lr = suggest(lrs, list(loss))
    assert lr is not None and 3e-4 < lr < 3e-3
    assert suggest(lrs, list(np.linspace(1, 5, 70))) is None  # never falls: no suggestion


def test_smooth_is_a_bias_corrected_average() -> None:
    assert smooth([2.0, 2.0, 2.0], 0.9) == pytest.approx([2.0, 2.0, 2.0])


def test_the_range_test_falls_then_blows_up_on_the_fixture(tiny_cfg) -> None:
    # up to lr 1e3: past 10 the sweep stops where the loss blows up, before its last step
    curve = find_lr(tiny_cfg.replace(lr=1e-3), steps=60, end=1e3, log=_quiet)
    s = np.asarray(curve.smoothed)
    lowest = int(np.nanargmin(np.where(np.isfinite(s), s, np.nan)))
    assert s[lowest] < 0.9 * s[0], "the loss never fell"
    assert "blew up" in curve.stopped or "became" in curve.stopped, curve.stopped
    assert len(curve.lrs) < 60
    assert not np.isfinite(curve.losses[-1]) or s[-1] > 4 * s[lowest]
    # the lr grows exponentially step by step
    ratios = np.diff(np.log(curve.lrs))
    assert np.allclose(ratios, ratios[0])
    # the suggestion lies on the falling part: below the minimum's rate, at a higher loss
    assert curve.suggested is not None
    i = curve.lrs.index(curve.suggested)
    assert curve.suggested < curve.at_min and s[i] > s[lowest]
    assert curve.png.is_file() and curve.png.read_bytes()[:4] == b"\x89PNG"
    assert curve.png.parent == Path(tiny_cfg.output_dir).parent / "lr_find"
    assert not Path(tiny_cfg.output_dir).exists()  # no run folder


def test_a_recipe_with_find_lr_prints_a_suggestion(tiny_cfg, capsys) -> None:
    recipe_main(tiny_cfg, argv=["--find-lr", "40"])
    out = capsys.readouterr().out
    assert "suggested: --lr " in out or "no suggestion" in out
    assert "steepest descent of the smoothed loss" in out or "no suggestion" in out
    assert "curve: " in out and ".png" in out
    assert not Path(tiny_cfg.output_dir).exists()


def test_the_curve_has_a_log_lr_axis_and_marks_the_suggestion() -> None:
    lrs = list(np.logspace(-6, 0, 20))
    losses = [3.0 - i * 0.1 for i in range(15)] + [4.0, 6.0, 9.0, 20.0, 50.0]
    fig = lr_find_figure(lrs, losses, smooth(losses, 0.5), 1e-3)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel() == "learning rate"
    marked = [line for line in ax.get_lines() if "suggested" in str(line.get_label())]
    assert len(marked) == 1 and marked[0].get_xdata()[0] == 1e-3
    assert ax.get_ylim()[1] < 50.0  # the blow-up does not squash the falling part
