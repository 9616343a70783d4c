"""Logit adjustment (balanced softmax) for the long tail: the >=60 age classes are rare.

The loss is cross entropy on ``logits + tau * log(prior)``, with the class priors counted from
the training labels that ``build_loss`` passes (``labels``). The model is trained to beat the
priors rather than to reproduce them, and predicts with its plain logits, which then favour
the rare classes (Menon et al. 2021, "Long-tail learning via logit adjustment"; with
``tau = 1`` it is the balanced softmax of Ren et al. 2020). Soft targets work as in
cross entropy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from kit.losses.classification import ClassWeights, CrossEntropy
from kit.losses.registry import register_loss

__all__ = ["LogitAdjusted", "balanced_softmax", "class_priors"]


def class_priors(labels: Any, num_classes: int) -> torch.Tensor:
    """Class shares of ``labels`` with one added to every count (a class missing from the
    training labels gets a small prior, not log 0)."""
    arr = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels).reshape(-1)
    if arr.size == 0 or arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() >= num_classes:
        raise ValueError(
            f"logit adjustment needs training labels in 0..{num_classes - 1}; got "
            f"{arr.size} labels of dtype {arr.dtype}"
        )
    counts = np.bincount(arr, minlength=num_classes).astype(np.float64) + 1.0
    return torch.tensor(counts / counts.sum(), dtype=torch.float32)


@register_loss("logit_adjusted")
class LogitAdjusted(CrossEntropy):
    """Cross entropy of ``logits + tau * log(prior)`` (priors from the training labels)."""

    def __init__(
        self,
        *,
        tau: float = 1.0,
        num_classes: int | None = None,
        labels: Any = None,
        class_weights: ClassWeights = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(
            num_classes=num_classes,
            labels=labels,
            class_weights=class_weights,
            label_smoothing=label_smoothing,
        )
        if labels is None or num_classes is None:
            raise ValueError(
                "logit_adjusted needs the training labels and num_classes for its class priors: "
                "build_loss('logit_adjusted', labels=..., num_classes=...) (training passes both)"
            )
        if tau < 0:
            raise ValueError(f"tau must be >= 0, got {tau}")
        self.tau = float(tau)
        self.register_buffer("adjustment", self.tau * class_priors(labels, num_classes).log())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return super().forward(logits.float() + self.adjustment, target)

    def extra_repr(self) -> str:
        return f"tau={self.tau}"


@register_loss("balanced_softmax")
def balanced_softmax(
    *, num_classes: int | None = None, labels: Any = None, label_smoothing: float = 0.0
) -> LogitAdjusted:
    """Logit adjustment with ``tau = 1`` (the balanced softmax)."""
    return LogitAdjusted(
        tau=1.0, num_classes=num_classes, labels=labels, label_smoothing=label_smoothing
    )
