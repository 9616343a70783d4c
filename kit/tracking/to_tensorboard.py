"""TensorBoard: event files in ``<run folder>/tensorboard/``, so ``tensorboard --logdir runs``
lists every run (a K-fold's fold runs one level further down)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from kit.tracking.base import TRACKERS, Tracker, TrackerSpec, TrackerStart

__all__ = ["EVENTS_DIR", "TensorBoardTracker"]

#: The folder of the event files, inside the run folder.
EVENTS_DIR = "tensorboard"


class TensorBoardTracker(Tracker):
    """Scalars per epoch, the config as text, the PNGs as images (files stay in the folder)."""

    def __init__(self, start: TrackerStart) -> None:
        from torch.utils.tensorboard import SummaryWriter  # optional: the tensorboard package

        # purge_step: a resumed run hides events a killed process logged past its checkpoint
        purge = start.first_epoch if start.first_epoch > 1 else None
        self.writer = SummaryWriter(str(start.run_dir / EVENTS_DIR), purge_step=purge)
        self.step = start.first_epoch - 1
        if purge is None:
            text = json.dumps(start.config, indent=1, default=str)
            self.writer.add_text("config", f"```\n{text}\n```", 0)

    def log_epoch(self, epoch: int, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, epoch)
        self.writer.flush()  # a live `tensorboard` shows the epoch now, not at the end
        self.step = epoch

    def log_summary(self, summary: Mapping[str, float]) -> None:
        for key, value in summary.items():
            self.writer.add_scalar(key, value, self.step)

    def log_artifacts(self, files: Sequence[Path]) -> None:
        for path in files:
            if path.suffix.lower() == ".png":
                with Image.open(path) as img:
                    pixels = np.asarray(img.convert("RGB"))
                self.writer.add_image(path.stem, pixels, self.step, dataformats="HWC")

    def close(self, status: str) -> None:
        self.writer.add_text("status", status, self.step)
        self.writer.close()


TRACKERS.register("tensorboard", TrackerSpec("tensorboard", TensorBoardTracker))
