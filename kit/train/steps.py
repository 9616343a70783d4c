"""One training epoch, one validation pass, and the loss of a config."""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from kit.heads import head_spec, to_probs
from kit.inference import predict
from kit.labels import HEADS, NUM_CLASSES, encode
from kit.losses import build_loss, build_multihead_loss
from kit.metrics import macro_f1, summarize

__all__ = ["CRITERIA", "batch_labels", "build_criterion", "train_one_epoch", "validate"]


def _joint_criterion(cfg: Any, labels: Any) -> nn.Module:
    return build_loss(cfg.loss, num_classes=NUM_CLASSES, labels=labels, **cfg.loss_kwargs)


def _heads_criterion(cfg: Any, labels: Any) -> nn.Module:
    specs = {h: cfg.head_losses.get(h, cfg.loss) for h in HEADS}
    shared = {k: v for k, v in cfg.loss_kwargs.items() if k not in HEADS}
    per_head = {h: {**shared, **cfg.loss_kwargs.get(h, {})} for h in HEADS}
    per_head = {h: kw for h, kw in per_head.items() if kw}
    return build_multihead_loss(specs, weights=cfg.head_weights, labels=labels, **per_head)


#: output kind (``kit.heads.OUTPUT_KINDS``) -> builder(cfg, labels) of its loss.
CRITERIA: dict[str, Callable[[Any, Any], nn.Module]] = {
    "joint": _joint_criterion,
    "heads": _heads_criterion,
}


def build_criterion(cfg: Any, labels: Any = None) -> nn.Module:
    """The loss of ``cfg`` for its head's output kind; ``labels`` are the 18-way training
    labels (for balanced weights).

    ``"joint"`` heads use ``loss``. ``"heads"`` heads: ``head_losses`` per head (heads not
    named use ``loss``); ``loss_kwargs`` keys named after a head (``age: {gamma: 2}``) go to
    that head only, other keys to every head.
    """
    kind = head_spec(cfg.head).kind
    if kind not in CRITERIA:
        raise ValueError(
            f"head {cfg.head!r} has output kind {kind!r}, which has no loss; "
            f"add a builder to kit.train.steps.CRITERIA (kinds with one: {sorted(CRITERIA)})"
        )
    return CRITERIA[kind](cfg, labels)


def batch_labels(output: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
    """(18-way training targets, 18-way predictions) of one batch, for the running F1."""
    with torch.no_grad():
        pred = to_probs(output.detach() if torch.is_tensor(output) else output).argmax(1)
    if isinstance(targets, dict):
        targets = encode(targets["mask"], targets["gender"], targets["age"])
    return targets.cpu().numpy(), pred.cpu().numpy()


def _to_device(targets: Any, device: torch.device) -> Any:
    if isinstance(targets, dict):
        return {k: v.to(device, non_blocking=True) for k, v in targets.items()}
    return targets.to(device, non_blocking=True)


def train_one_epoch(
    parts: dict[str, Any], loader: Any, criterion: nn.Module, cfg: Any, epoch: int
) -> tuple[float, float]:
    """Train ``parts["model"]`` for one epoch: (mean loss per image, learning rate of its last
    optimizer step). The schedule advances once per optimizer step (``cfg.grad_accum`` batches).
    """
    model, optimizer = parts["model"], parts["optimizer"]
    schedule, scaler = parts["schedule"], parts["scaler"]
    device = next(model.parameters()).device
    use_amp = scaler.is_enabled()
    steps = epoch_steps(loader, cfg)
    model.train()
    optimizer.zero_grad(set_to_none=True)
    total, seen, lr = 0.0, 0, schedule.current_lr()
    seen_true: list[np.ndarray] = []
    seen_pred: list[np.ndarray] = []
    show = not cfg.quiet and sys.stderr.isatty()
    with tqdm(total=steps, desc=f"epoch {epoch}", leave=False, disable=not show) as bar:
        # islice, not a break: a break would load (and throw away) one batch too many
        for i, (images, targets) in enumerate(itertools.islice(loader, steps)):
            images, targets = images.to(device, non_blocking=True), _to_device(targets, device)
            with torch.autocast(device.type, enabled=use_amp):
                output = model(images)
                loss = criterion(output, targets)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"training loss is {loss.item()} at epoch {epoch}, batch {i}; "
                    f"try a lower --lr (now {cfg.lr}) or --grad-clip 1.0"
                )
            scaler.scale(loss / cfg.grad_accum).backward()
            if (i + 1) % cfg.grad_accum == 0 or i + 1 == steps:
                if cfg.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                lr = schedule.current_lr()
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                schedule.step()
            total += loss.item() * len(images)
            seen += len(images)
            if show:
                true, pred = batch_labels(output, targets)
                seen_true.append(true)
                seen_pred.append(pred)
                running_f1 = macro_f1(np.concatenate(seen_true), np.concatenate(seen_pred))
                bar.set_postfix(loss=f"{total / seen:.4f}", f1=f"{running_f1:.3f}")
            bar.update()
    return total / max(seen, 1), lr


def epoch_steps(loader: Any, cfg: Any) -> int:
    """Batches per training epoch (``max_steps_per_epoch`` caps it)."""
    return min(len(loader), cfg.max_steps_per_epoch or len(loader))


def optimizer_steps(loader: Any, cfg: Any) -> int:
    """Optimizer steps per epoch, after gradient accumulation."""
    return math.ceil(epoch_steps(loader, cfg) / cfg.grad_accum)


def validate(
    model: nn.Module,
    df: pd.DataFrame,
    cfg: Any,
    predictor: Callable[[nn.Module, pd.DataFrame], np.ndarray] | None = None,
) -> tuple[np.ndarray, dict[str, Any], float]:
    """(probabilities, scores, loss) on ``df``, scored with the official labels (``label``).

    The loss is the mean negative log-likelihood of the official class under the 18-way
    probabilities: comparable across heads, losses and age thresholds. ``predictor(model, df)``
    replaces ``predict(model, df, cfg, tta=cfg.tta)`` (a cache, several processes).
    """
    probs = predict(model, df, cfg, tta=cfg.tta) if predictor is None else predictor(model, df)
    truth = df["label"].to_numpy(np.int64)
    scores = summarize(truth, probs.argmax(1))
    picked = probs[np.arange(len(truth)), truth]
    return probs, scores, float(-np.log(np.clip(picked, 1e-12, None)).mean())
