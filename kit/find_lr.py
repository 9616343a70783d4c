"""``--find-lr``: a learning-rate range test at a recipe's real settings (as fastai's
``lr_find`` and Lightning's ``Tuner.lr_find`` do it).

The recipe's own trainer (model, loss, optimizer with its decays, sampler, batch, AMP, mixing,
augmentation) trains while the rate grows exponentially from ``START`` to ``END``, one value
per optimizer step, until ``steps`` steps are done or the smoothed loss blows up (over
``BLOWUP`` times its lowest, or not finite). It suggests the rate of the steepest fall of the
smoothed loss before its minimum, and names the minimum's rate / 10 (the other common rule).
The curve (PNG) and its figures (CSV) go to ``<output_dir>/../lr_find/``, never a run folder.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from kit import io
from kit import splits as kit_splits
from kit.config import Config
from kit.device import resolve_device, seed_everything
from kit.models import resolve_weights
from kit.plot import lr_find_png
from kit.train.distributed import SINGLE, training_module
from kit.train.fit import Measured
from kit.train.loop import train_one_epoch
from kit.train.setup import RunPictures, build_trainer, check

__all__ = ["BLOWUP", "END", "START", "LrCurve", "find_lr", "report", "suggest"]

START, END = 1e-7, 10.0
STEPS, SMOKE_STEPS = 200, 30
BLOWUP = 4.0  # the smoothed loss above this many times its lowest: the test is over
RULE = "steepest descent of the smoothed loss before its minimum"


@dataclass
class LrCurve:
    """One range test: the rate and loss of every step, the smoothed loss, the suggestion."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggested: float | None
    at_min: float  # the rate of the lowest smoothed loss
    stopped: str  # why the sweep ended
    png: Path | None = None
    csv: Path | None = None


def smooth(losses: list[float], beta: float) -> list[float]:
    """Exponential moving average with bias correction (fastai's)."""
    out, avg = [], 0.0
    for i, loss in enumerate(losses, start=1):
        avg = beta * avg + (1 - beta) * loss
        out.append(avg / (1 - beta**i))
    return out


def suggest(lrs: list[float], smoothed: list[float]) -> float | None:
    """The rate of the steepest fall of ``smoothed`` against log lr before its minimum (None
    when the loss never fell). The first tenth of the steps is left out: the average is still
    settling there."""
    values = np.asarray(smoothed, dtype=float)
    finite = np.isfinite(values)
    if finite.sum() < 3:
        return None
    lowest = int(np.nanargmin(np.where(finite, values, np.nan)))
    skip = len(values) // 10
    if lowest - skip < 2:
        return None
    # up to the minimum, itself left out: the suggestion lies where the loss still falls
    x = np.log10(np.asarray(lrs[skip : lowest + 1]))
    slope = np.gradient(values[skip : lowest + 1], x)[:-1]
    steepest = int(np.argmin(slope))
    return float(lrs[skip + steepest]) if slope[steepest] < 0 else None


class _Stop(Exception):
    """The sweep is over; its message says why."""


class _Sweep:
    """Stands in for the run's scheduler: sets the rate of step ``i`` on every parameter group
    (a group's ``lr_scale``, from layer decay, kept) and records each batch's loss."""

    def __init__(self, optimizer: Any, lrs: np.ndarray, beta: float) -> None:
        self.optimizer, self.lrs, self.beta = optimizer, lrs, beta
        self.step = 0
        self.seen_lrs: list[float] = []
        self.losses: list[float] = []
        self.best = math.inf
        self._apply()

    def _apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = float(self.lrs[self.step]) * group.get("lr_scale", 1.0)

    def step_update(self, num_updates: int, metric: float | None = None) -> None:
        self.step += 1
        if self.step >= len(self.lrs):
            raise _Stop(f"{len(self.lrs)} steps done")
        self._apply()

    def record(self, loss: float) -> None:
        self.seen_lrs.append(float(self.lrs[self.step]))
        self.losses.append(loss)
        if not math.isfinite(loss):
            raise _Stop(f"the loss became {loss} at lr {self.seen_lrs[-1]:.2e}")
        smoothed = smooth(self.losses, self.beta)[-1]
        self.best = min(self.best, smoothed)
        if len(self.losses) > len(self.lrs) // 10 and smoothed > BLOWUP * self.best:
            raise _Stop(
                f"the loss blew up (over {BLOWUP:g}x its lowest) at lr {self.seen_lrs[-1]:.2e}"
            )


class _Recorded(nn.Module):
    """The run's loss, every value told to the sweep (which may end it)."""

    def __init__(self, criterion: nn.Module, sweep: _Sweep) -> None:
        super().__init__()
        self.criterion, self.sweep = criterion, sweep

    def forward(self, output: Any, target: Any) -> Any:
        loss = self.criterion(output, target)
        self.sweep.record(float(loss.detach()))
        return loss


def find_lr(
    cfg: Config,
    train_transform: Any = None,
    *,
    steps: int | None = None,
    start: float = START,
    end: float = END,
    log: Callable[[str], None] = print,
) -> LrCurve:
    """The range test of ``cfg`` over ``steps`` optimizer steps (default :data:`STEPS`, or
    :data:`SMOKE_STEPS` with ``cfg.smoke``), its curve written under ``lr_find/``."""
    checked = check(cfg)
    n = steps or (SMOKE_STEPS if checked.smoke else STEPS)
    if n < 5 or not 0 < start < end:
        raise ValueError(f"--find-lr needs at least 5 steps and 0 < start < end (got {n} steps)")
    device = resolve_device(checked.device)
    weights = resolve_weights(checked)
    seed_everything(checked.seed)
    splits = kit_splits.load_splits(checked)
    pictures = RunPictures.for_run(checked, splits, progress=not checked.quiet)
    run_cfg = checked.replace(max_steps_per_epoch=None, quiet=True)
    t = build_trainer(
        run_cfg, splits.training, pictures, train_transform, device=device, pretrained=weights
    )
    t.parts.module = training_module(t.parts.model, run_cfg, SINGLE, device)
    lrs = start * (end / start) ** (np.arange(n) / (n - 1))
    sweep = _Sweep(t.parts.optimizer, lrs, beta=max(0.0, 1.0 - 5.0 / n))
    t.parts.scheduler = sweep
    criterion = _Recorded(t.criterion, sweep)
    log(f"find-lr: {n} steps, lr {start:.0e} -> {end:.0e}, {checked.model} on {device} ...")
    stopped, epoch = "", 1
    try:
        while not stopped:
            mixer = t.start_epoch(run_cfg, epoch)
            try:
                train_one_epoch(t.parts, t.loader, criterion, run_cfg, epoch, mixer)
            except _Stop as end_of:
                stopped = str(end_of)
            epoch += 1
    finally:
        t.close()
    smoothed = smooth(sweep.losses, sweep.beta)
    finite = [v if math.isfinite(v) else math.inf for v in smoothed]
    at_min = sweep.seen_lrs[int(np.argmin(finite))]
    curve = LrCurve(
        sweep.seen_lrs, sweep.losses, smoothed, suggest(sweep.seen_lrs, smoothed), at_min, stopped
    )
    folder = Path(checked.output_dir).expanduser().absolute().parent / "lr_find"
    stem = f"{datetime.now():%Y%m%d-%H%M%S}_{checked.name}"
    curve.csv = folder / f"{stem}.csv"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        fix = "pass another --output-dir (lr_find/ goes beside it)"
        raise io.output_error(folder, err, fix) from err
    frame = pd.DataFrame({"lr": curve.lrs, "loss": curve.losses, "smoothed": curve.smoothed})
    io.write_text(curve.csv, frame.to_csv(index=False, lineterminator="\n"))
    title = f"{checked.name}: {checked.model}, batch {checked.batch_size}, {checked.optimizer}"
    curve.png = lr_find_png(
        curve.lrs, curve.losses, smoothed, curve.suggested, folder / f"{stem}.png", title
    )
    return curve


def format_curve(curve: LrCurve, cfg: Config) -> str:
    """The report: where the curve is, why it stopped, the suggestion and its rule."""
    lines = [
        f"find-lr: {len(curve.lrs)} steps, lr {curve.lrs[0]:.1e} to {curve.lrs[-1]:.1e}; "
        f"stopped: {curve.stopped}",
        f"curve: {curve.png} (figures: {curve.csv})",
        f"lowest smoothed loss at lr {curve.at_min:.2e}; min/10 rule: {curve.at_min / 10:.2e}",
    ]
    if curve.suggested is None:
        lines.append(
            "no suggestion: the loss did not fall before it blew up; try more steps "
            "(--find-lr 400) or look at the curve"
        )
    else:
        lines.append(
            f"suggested: --lr {curve.suggested:.2e} ({RULE}; the recipe has {cfg.lr:g}). "
            "Check the curve: the suggestion should sit where the loss is falling"
        )
    return "\n".join(lines)


def report(cfg: Config, train_transform: Any = None, *, steps: int | None = None) -> None:
    """``--find-lr``: run :func:`find_lr`, print :func:`format_curve`, stop the recipe."""
    curve = find_lr(cfg, train_transform, steps=steps)
    print(format_curve(curve, check(cfg)), flush=True)
    raise Measured()
