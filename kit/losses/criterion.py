"""The loss a config trains: ``cfg.loss`` (or ``cfg.head_losses`` per head) over the output kind
of ``cfg.head``, with the training labels for class-balanced weights.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from torch import nn

from kit.config import Config
from kit.heads import head_spec
from kit.labels import HEAD_SIZES, NUM_CLASSES, TASKS, decode
from kit.losses.multihead import build_multihead_loss
from kit.losses.registry import build_loss, head_loss_args

__all__ = ["CRITERIA", "build_criterion"]


def _joint_criterion(cfg: Config, labels: Any) -> nn.Module:
    return build_loss(cfg.loss, num_classes=NUM_CLASSES, labels=labels, **cfg.loss_kwargs)


def _heads_criterion(cfg: Config, labels: Any) -> nn.Module:
    args = head_loss_args(cfg.loss, head_losses=cfg.head_losses, loss_kwargs=cfg.loss_kwargs)
    specs = {h: spec for h, (spec, _) in args.items()}
    per_head = {h: kw for h, (_, kw) in args.items() if kw}
    return build_multihead_loss(specs, weights=cfg.head_weights, labels=labels, **per_head)


def _task_criterion(task: str) -> Callable[[Any, Any], nn.Module]:
    """``cfg.loss`` over one task's values; balanced weights count the task's values."""

    def build(cfg: Config, labels: Any) -> nn.Module:
        values = None if labels is None else decode(np.asarray(labels))[TASKS.index(task)]
        return build_loss(cfg.loss, num_classes=HEAD_SIZES[task], labels=values, **cfg.loss_kwargs)

    return build


#: output kind (``kit.heads.OUTPUT_KINDS``) -> builder(cfg, labels) of its loss.
CRITERIA: dict[str, Callable[[Any, Any], nn.Module]] = {
    "joint": _joint_criterion,
    "heads": _heads_criterion,
    **{task: _task_criterion(task) for task in TASKS},
}


def build_criterion(cfg: Config, labels: Any = None) -> nn.Module:
    """The loss of ``cfg`` for its head's output kind; ``labels`` are the 18-way training
    labels (for balanced weights).

    ``"joint"`` heads use ``loss``; so do per-task heads (``"mask"``, ``"gender"``,
    ``"age"``), over their task's values. ``"heads"`` heads: ``head_losses`` per head (heads not
    named use ``loss``); ``loss_kwargs`` keys named after a head (``age: {gamma: 2}``) go to
    that head only, other keys to every head.
    """
    kind = head_spec(cfg.head).kind
    if kind not in CRITERIA:
        raise ValueError(
            f"head {cfg.head!r} has output kind {kind!r}, which has no loss; "
            f"add a builder to kit.losses.criterion.CRITERIA (kinds with one: {sorted(CRITERIA)})"
        )
    return CRITERIA[kind](cfg, labels)
