"""The built-in losses: cross entropy, focal, label smoothing, soft macro F1 and logit
adjustment for the long tail.

Each takes ``logits (n, C)`` and ``target``: class ids ``(n,)`` (long) or soft targets
``(n, C)`` (float rows of probabilities, from mixed batches), and returns a scalar. None of them
assumes a number of classes: C always comes from the logits (the official baseline's
F1 loss defaulted to 3 classes on the 18-class problem).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kit.losses.build import register_loss

__all__ = [
    "CrossEntropy",
    "FocalLoss",
    "LogitAdjusted",
    "SoftF1Loss",
    "balanced_softmax",
    "balanced_weights",
    "class_priors",
    "label_smoothing",
    "resolve_class_weights",
]

ClassWeights = str | Sequence[float] | torch.Tensor | np.ndarray | None


def balanced_weights(labels: Any, num_classes: int) -> torch.Tensor:
    """``n / (num_classes * count_c)`` per class (sklearn's "balanced").

    A class absent from ``labels`` gets weight 0: it cannot occur among those targets, and 0
    keeps the other weights unchanged rather than inventing a count for it.
    """
    arr = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels).reshape(-1)
    if arr.size == 0:
        raise ValueError("class_weights='balanced' got no labels to count")
    if arr.dtype.kind not in "iu" or arr.min() < 0 or arr.max() >= num_classes:
        raise ValueError(
            f"labels for class_weights='balanced' must be integers in 0..{num_classes - 1}, "
            f"got dtype {arr.dtype}, range {arr.min()}..{arr.max()}"
        )
    counts = np.bincount(arr, minlength=num_classes).astype(np.float64)
    weights = np.divide(arr.size, num_classes * counts, out=np.zeros_like(counts), where=counts > 0)
    return torch.tensor(weights, dtype=torch.float32)


def resolve_class_weights(
    class_weights: ClassWeights, *, num_classes: int | None = None, labels: Any = None
) -> torch.Tensor | None:
    """Class weights as a float tensor: None, ``"balanced"`` (from ``labels``) or a sequence."""
    if class_weights is None:
        return None
    if isinstance(class_weights, str):
        if class_weights != "balanced":
            raise ValueError(f"class_weights must be 'balanced' or numbers, got {class_weights!r}")
        if labels is None or num_classes is None:
            raise ValueError(
                "class_weights='balanced' needs the training labels and num_classes: "
                f"build_loss(..., labels=..., num_classes=...); got labels="
                f"{'None' if labels is None else 'given'}, num_classes={num_classes!r}"
            )
        return balanced_weights(labels, num_classes)
    weights = torch.as_tensor(np.asarray(class_weights, dtype=np.float64), dtype=torch.float32)
    if weights.ndim != 1 or not torch.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"class_weights must be finite non-negative numbers, got {class_weights}")
    if num_classes is not None and len(weights) != num_classes:
        raise ValueError(f"class_weights has {len(weights)} values; num_classes is {num_classes}")
    return weights


def _check(logits: torch.Tensor, target: torch.Tensor, expected: int | None = None) -> None:
    """Refuse logits and targets that do not fit: targets are class ids (n,) or soft
    targets (n, C) of probabilities (mixed batches, ``kit.mixing``)."""
    soft = target.is_floating_point()
    if soft and target.ndim == 1:
        raise ValueError(
            f"target must hold integer class ids (n,) or probabilities (n, C); got dtype "
            f"{target.dtype} of shape {tuple(target.shape)}"
        )
    if (
        logits.ndim != 2
        or target.ndim != (2 if soft else 1)
        or len(logits) != len(target)
        or len(target) == 0
    ):
        raise ValueError(
            f"expected logits (n, C) and target (n,) of class ids or (n, C) of probabilities, "
            f"n >= 1; got logits {tuple(logits.shape)} and target {tuple(target.shape)}"
        )
    num_classes = logits.shape[1]
    if expected is not None and num_classes != expected:
        raise ValueError(f"logits have {num_classes} classes; this loss was built for {expected}")
    if soft:
        if target.shape[1] != num_classes:
            raise ValueError(
                f"soft target has {target.shape[1]} classes; logits have {num_classes}"
            )
        return
    if target.dtype not in (torch.int64, torch.int32, torch.uint8):
        raise ValueError(f"target must hold integer class ids, got dtype {target.dtype}")
    low, high = int(target.min()), int(target.max())
    if low < 0 or high >= num_classes:
        raise ValueError(f"target holds {low}..{high}; logits have classes 0..{num_classes - 1}")


def _as_probs(target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Soft targets as they are; class ids as one-hot rows."""
    if target.is_floating_point():
        return target.float()
    return F.one_hot(target.long(), num_classes).float()


class _Weighted(nn.Module):
    """Shared state of the per-sample losses: optional class weights and a class count."""

    def __init__(self, num_classes: int | None, labels: Any, class_weights: ClassWeights) -> None:
        super().__init__()
        weight = resolve_class_weights(class_weights, num_classes=num_classes, labels=labels)
        self.num_classes = num_classes if num_classes is not None else _len(weight)
        self.register_buffer("weight", weight)


def _len(weight: torch.Tensor | None) -> int | None:
    return None if weight is None else len(weight)


@register_loss("cross_entropy")
class CrossEntropy(_Weighted):
    """``F.cross_entropy`` with optional class weights and label smoothing."""

    def __init__(
        self,
        *,
        num_classes: int | None = None,
        labels: Any = None,
        class_weights: ClassWeights = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(num_classes, labels, class_weights)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(logits, target, self.num_classes)
        target = target.float() if target.is_floating_point() else target.long()
        return F.cross_entropy(
            logits.float(), target, weight=self.weight, label_smoothing=self.label_smoothing
        )


@register_loss("label_smoothing")
def label_smoothing(
    *,
    smoothing: float = 0.1,
    num_classes: int | None = None,
    labels: Any = None,
    class_weights: ClassWeights = None,
) -> CrossEntropy:
    """cross_entropy with its label_smoothing argument on: ``--loss label_smoothing`` is
    ``--loss cross_entropy --loss-kwargs label_smoothing=0.1`` (torch's definition).

    A loss of its own so that a spec can smooth one term only (``label_smoothing+f1``)."""
    return CrossEntropy(
        num_classes=num_classes,
        labels=labels,
        class_weights=class_weights,
        label_smoothing=smoothing,
    )


@register_loss("focal")
class FocalLoss(_Weighted):
    """``-(1 - p_t)^gamma * log p_t``, averaged like weighted cross entropy.

    With class weights w the mean is ``sum(w_t * FL) / sum(w_t)``; gamma = 0 gives exactly
    cross entropy.
    """

    def __init__(
        self,
        *,
        gamma: float = 2.0,
        num_classes: int | None = None,
        labels: Any = None,
        class_weights: ClassWeights = None,
    ) -> None:
        super().__init__(num_classes, labels, class_weights)
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.gamma = float(gamma)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(logits, target, self.num_classes)
        log_p = F.log_softmax(logits.float(), dim=1)
        if target.is_floating_point():  # soft: the expected focal term under the target
            t = target.float()
            loss = -(t * self._focal(log_p) * log_p).sum(1)
            w = None if self.weight is None else t @ self.weight
        else:
            target = target.long()
            log_pt = log_p.gather(1, target[:, None]).squeeze(1)
            loss = -self._focal(log_pt) * log_pt
            w = None if self.weight is None else self.weight[target]
        if w is None:
            return loss.mean()
        return (w * loss).sum() / w.sum()

    def _focal(self, log_p: torch.Tensor) -> torch.Tensor | float:
        if not self.gamma:
            return 1.0
        # The clamp keeps the gradient finite where p rounds to 1 and gamma < 1.
        return (-torch.expm1(log_p)).clamp_min(1e-30) ** self.gamma

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"


@register_loss("f1")
class SoftF1Loss(nn.Module):
    """``1 - mean_c soft-F1_c`` with soft-F1 = ``2 TP / (2 TP + FP + FN + eps)``.

    TP, FP, FN are sums of softmax probabilities against one-hot targets over the batch; the
    mean runs over all C classes of the logits, so a class absent from the batch adds 0.
    """

    def __init__(self, *, eps: float = 1e-7) -> None:
        super().__init__()
        self.eps = float(eps)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _check(logits, target)
        probs = F.softmax(logits.float(), dim=1)
        onehot = _as_probs(target, logits.shape[1])
        tp = (probs * onehot).sum(0)
        # 2TP + FP + FN = (TP + FP) + (TP + FN) = predicted mass + true count
        f1 = 2 * tp / (probs.sum(0) + onehot.sum(0) + self.eps)
        return 1 - f1.mean()

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


# Logit adjustment (balanced softmax) for the long tail: the >=60 age classes are rare.
# The loss is cross entropy on ``logits + tau * log(prior)``, with the class priors counted from
# the training labels that ``build_loss`` passes (``labels``). The model is trained to beat the
# priors rather than to reproduce them, and predicts with its plain logits, which then favour
# the rare classes (Menon et al. 2021, "Long-tail learning via logit adjustment"; with
# ``tau = 1`` it is the balanced softmax of Ren et al. 2020). Soft targets work as in
# cross entropy.


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
