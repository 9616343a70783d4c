"""Progress of a long loop (a training epoch, a cache build), wherever the output goes: a tqdm
bar on a terminal (for an epoch: loss and running F1 beside it), tqdm.auto's bar in a Jupyter
notebook, and anywhere else (``nohup``, CI, a log file, a pipe) a plain log line every
:data:`EVERY_FRACTION` of the loop or :data:`EVERY_SECONDS`, whichever comes first, with
pictures per second and the time left. Each such moment also calls ``heartbeat`` with the same
figures (training updates the run's ``status.json``), so a teammate can tell a shared run is
alive. This module imports nothing of kit (layer 0): the data layer's cache build uses it too.
"""

from __future__ import annotations

import itertools
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from tqdm import tqdm
from tqdm.auto import tqdm as auto_tqdm

__all__ = ["EVERY_FRACTION", "EVERY_SECONDS", "Progress", "in_notebook"]

_log = logging.getLogger("kit")
#: A plain progress line (and a heartbeat) at least every this share of an epoch ...
EVERY_FRACTION = 0.1
#: ... and at least every this many seconds.
EVERY_SECONDS = 30.0


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (where tqdm.auto draws a widget bar)."""
    get = getattr(sys.modules.get("IPython"), "get_ipython", None)
    kernel = get() if callable(get) else None
    return kernel is not None and "IPKernelApp" in getattr(kernel, "config", {})


def _clock(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """The progress of a loop of ``steps`` steps (``what``: batches, pictures) titled ``desc``:
    call :meth:`step` after each step (or batch of steps). ``first_after``: no line (nor
    heartbeat) in the loop's first seconds, so a short loop stays silent."""

    def __init__(
        self,
        desc: str,
        steps: int,
        quiet: bool = False,
        heartbeat: Callable[[dict[str, Any]], None] | None = None,
        what: str = "batches",
        first_after: float = 0.0,
    ) -> None:
        self.desc, self.steps, self.heartbeat, self.what = desc, steps, heartbeat, what
        self.first_after = first_after
        self.start = self.last = time.monotonic()
        self.done = self.images = 0
        self.postfix: dict[str, str] = {}
        self.next_step = self._next_mark()
        notebook = in_notebook()
        self.lines = not quiet and not sys.stderr.isatty() and not notebook
        bar = auto_tqdm if notebook else tqdm
        self.bar = bar(total=steps, desc=desc, leave=False, disable=quiet or self.lines)

    @property
    def bar_shown(self) -> bool:
        """Whether a bar is drawn (its postfix is worth computing)."""
        return not self.bar.disable

    def _next_mark(self) -> int:
        """The first step after :attr:`done` that ends a :data:`EVERY_FRACTION` of the epoch."""
        marks = (max(1, round(k * EVERY_FRACTION * self.steps)) for k in itertools.count(1))
        return next(mark for mark in marks if mark > self.done)

    def step(self, images: int, steps: int = 1, **postfix: str) -> None:
        """``steps`` steps of ``images`` pictures in all done; ``postfix`` goes beside a bar
        and at the end of a line (loss, running F1)."""
        self.done += steps
        self.images += images
        if postfix:
            self.postfix = postfix  # lines show the latest figures
            if self.bar_shown:
                self.bar.set_postfix(**postfix)
        self.bar.update(steps)
        now = time.monotonic()
        if self.done >= self.steps:  # the loop's own end line follows
            return
        due = self.done >= self.next_step or now - self.last >= EVERY_SECONDS
        if not due or now - self.start < self.first_after:
            return
        self.next_step, self.last = self._next_mark(), now
        figures = self.figures(now)
        if self.lines:
            line = f"{self.desc}  {figures['percent']:3d}% ({self.done}/{self.steps} {self.what})"
            line += f"  {figures['images_per_s']:.1f} img/s  ETA {_clock(figures['eta_s'])}"
            _log.info("%s%s", line, "".join(f"  {k} {v}" for k, v in self.postfix.items()))
        if self.heartbeat is not None:
            self.heartbeat(figures)

    def figures(self, now: float | None = None) -> dict[str, Any]:
        """Where the loop stands: step, steps, percent, pictures/s, seconds left."""
        elapsed = max((time.monotonic() if now is None else now) - self.start, 1e-9)
        return {
            "step": self.done,
            "steps": self.steps,
            "percent": int(100 * self.done / max(self.steps, 1)),
            "images_per_s": round(self.images / elapsed, 1),
            "eta_s": round((self.steps - self.done) / max(self.done / elapsed, 1e-9), 1),
        }

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
