"""Losses for the 18-class problem and for three-head models, built from short spec strings.

>>> loss = build_loss("0.5*focal+0.5*f1", num_classes=18, gamma=2.0)
>>> loss = build_multihead_loss({"mask": "cross_entropy", "gender": "cross_entropy",
...                              "age": "focal"}, weights={"age": 2.0})

Add your own loss with ``@register_loss("name")`` on a function or class that returns an
``nn.Module`` whose ``forward(logits (n, C), target)`` returns a scalar; ``target`` is class
ids ``(n,)`` (long) or, in mixed batches (``cfg.mix``), soft targets ``(n, C)`` (float).
"""

from kit.losses.build import (
    CRITERIA,
    LOSSES,
    MultiHeadLoss,
    WeightedSumLoss,
    build_criterion,
    build_loss,
    build_multihead_loss,
    check_spec,
    head_loss_args,
    register_loss,
)
from kit.losses.classification import (
    CrossEntropy,
    FocalLoss,
    LogitAdjusted,
    SoftF1Loss,
    balanced_softmax,
    balanced_weights,
    class_priors,
    label_smoothing,
    resolve_class_weights,
)

__all__ = [
    "CRITERIA",
    "LOSSES",
    "CrossEntropy",
    "FocalLoss",
    "LogitAdjusted",
    "MultiHeadLoss",
    "SoftF1Loss",
    "WeightedSumLoss",
    "balanced_softmax",
    "balanced_weights",
    "build_criterion",
    "build_loss",
    "build_multihead_loss",
    "check_spec",
    "class_priors",
    "head_loss_args",
    "label_smoothing",
    "register_loss",
    "resolve_class_weights",
]
