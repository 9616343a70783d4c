"""What the batch loop keeps on the device: the epoch's loss sum, the losses not yet checked
for NaN / inf, and (on a terminal) the confusion counts of the running F1.

Reading a device tensor waits for the device to finish its queued work, so the loop reads
these every :data:`SYNC_EVERY` steps and at the end of the epoch, never each step: the GPU
stays a few steps ahead of the Python code. The running F1 is updated from confusion counts
(one ``torch.bincount`` per batch), not recomputed over every label seen so far.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from kit.errors import TrainingDiverged
from kit.heads import target_classes, to_probs
from kit.labels import NUM_CLASSES
from kit.metrics import f1_from_confusion

__all__ = ["SYNC_EVERY", "Running", "batch_labels"]

#: Training steps between reads of the loss (each read waits for the device to finish).
SYNC_EVERY = 25


def _batch_codes(output: Any, targets: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """(training targets, predictions) of one batch, on the model's device: 18-way, or a
    per-task head's values."""
    with torch.no_grad():
        pred = to_probs(output.detach() if torch.is_tensor(output) else output).argmax(1)
    return target_classes(targets), pred


def batch_labels(output: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
    """(18-way training targets, 18-way predictions) of one batch, for the running F1."""
    true, pred = _batch_codes(output, targets)
    return true.cpu().numpy(), pred.cpu().numpy()


class Running:
    """The epoch's loss sum and (on a terminal) confusion counts, kept on the device: reading
    them waits for the device, so that happens every :data:`SYNC_EVERY` steps, not each one.
    The losses since the last read are checked for NaN / inf then."""

    def __init__(self, device: torch.device, counts: bool, width: int = NUM_CLASSES) -> None:
        dtype = torch.float32 if device.type == "mps" else torch.float64  # mps has no float64
        self.loss_sum = torch.zeros((), dtype=dtype, device=device)
        self.width = width  # classes of the running F1: 18, or a per-task head's values
        self.cm = torch.zeros(width**2, dtype=torch.int64, device=device) if counts else None
        self.pending: list[torch.Tensor] = []
        self.first = 0  # batch index of pending[0]

    def add(self, loss: torch.Tensor, n: int, output: Any, targets: Any) -> None:
        loss = loss.detach()
        self.pending.append(loss)
        self.loss_sum += loss.to(self.loss_sum.dtype) * n
        if self.cm is not None:
            true, pred = _batch_codes(output, targets)
            self.cm += torch.bincount(true * self.width + pred, minlength=self.width**2)

    def check(self, epoch: int, cfg: Any) -> None:
        """Raise on the first non-finite loss since the last check."""
        if not self.pending:
            return
        losses = torch.stack(self.pending).float()
        finite = torch.isfinite(losses).cpu()
        if not bool(finite.all()):
            j = int((~finite).nonzero()[0])
            raise TrainingDiverged(
                f"training loss is {losses[j].item()} at epoch {epoch}, batch {self.first + j}; "
                f"try a lower --lr (now {cfg.lr}) or --grad-clip 1.0"
            )
        self.first += len(self.pending)
        self.pending = []

    def f1(self) -> float:
        """Macro F1 of every training batch so far, from the confusion counts."""
        cm = self.cm.cpu().numpy().reshape(self.width, self.width)
        return float(f1_from_confusion(cm).mean())
