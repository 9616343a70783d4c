"""Batch mixing for training: MixUp, CutMix and half-picture CutMix, with soft targets
(docs/techniques.md, "What each does").

Every picture is blended with a partner of the same batch (:data:`MIX_PAIRS`: ``random``, or
``same_class``, so a cut never pastes a mask onto a face labelled "not wear"), and its target
becomes ``lam * target + (1 - lam) * partner's target``; a three-head model gets each head's
marginal of that, a per-task head its task's values. Random-pair MixUp / CutMix is
``timm.data.Mixup`` itself. Every draw comes from numpy's global generator, which training
re-seeds every epoch: a resumed run mixes its batches exactly as an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from timm.data import Mixup
from timm.data.mixup import cutmix_bbox_and_lam

from kit.labels import NUM_CLASSES, TASK_SIZES, TASKS, heads_from_joint
from kit.models import head_task, target_classes
from kit.registry import Registry

__all__ = ["MIXES", "MIX_PAIRS", "Mixer", "build_mixer", "mix_active", "soft_targets"]

#: ``mix(images, partner, alpha, lam) -> share kept``: see :class:`MixSpec`.
MixFn = Callable[[torch.Tensor, np.ndarray, float, tuple[float, float]], float]

#: pairing name -> ``pairs(class ids (n,) numpy) -> partner index of each row``.
MIX_PAIRS: Registry[Callable[[np.ndarray], np.ndarray]] = Registry("mix_pairs")


@MIX_PAIRS.register("random")
def _random_pairs(classes: np.ndarray) -> np.ndarray:
    return np.random.permutation(len(classes))


@MIX_PAIRS.register("same_class")
def _same_class_pairs(classes: np.ndarray) -> np.ndarray:
    """Each row's partner has its class (a class seen once in the batch pairs with itself,
    which leaves that picture and its target as they were)."""
    partner = np.arange(len(classes))
    for c in np.unique(classes):
        rows = np.flatnonzero(classes == c)
        partner[rows] = rows[np.random.permutation(len(rows))]
    return partner


@dataclass(frozen=True)
class MixSpec:
    """A mixing operation: ``mix(images, partner, alpha, lam) -> share kept`` pastes or blends
    the partner rows into ``images`` in place (``alpha``: the Beta(alpha, alpha) of MixUp and
    CutMix; ``lam``: the range of the half-picture cut); ``timm`` the ``timm.data.Mixup``
    arguments that do the same with random partners (None: kit's own code for every pairing)."""

    mix: MixFn | None
    timm: dict[str, float] | None = None


def _blend(x: torch.Tensor, partner: np.ndarray, alpha: float, lam: tuple[float, float]) -> float:
    lam = float(np.random.beta(alpha, alpha))
    x.mul_(lam).add_(x[torch.as_tensor(partner, device=x.device)], alpha=1.0 - lam)
    return lam


def _box(x: torch.Tensor, partner: np.ndarray, alpha: float, lam: tuple[float, float]) -> float:
    lam = float(np.random.beta(alpha, alpha))
    (yl, yh, xl, xh), lam = cutmix_bbox_and_lam(x.shape, lam, correct_lam=True)
    x[:, :, yl:yh, xl:xh] = x[torch.as_tensor(partner, device=x.device)][:, :, yl:yh, xl:xh]
    return float(lam)


def _halves(axis: int) -> MixFn:
    def mix(x: torch.Tensor, partner: np.ndarray, alpha: float, lam: tuple[float, float]) -> float:
        size = x.shape[axis]
        cut = round(float(np.random.uniform(*lam)) * size)
        cut = min(max(cut, 1), size - 1)
        rest = x[torch.as_tensor(partner, device=x.device)].narrow(axis, cut, size - cut)
        x.narrow(axis, cut, size - cut).copy_(rest)
        return cut / size  # the share the picture keeps, exactly

    return mix


#: mix name (``cfg.mix``) -> its operation.
MIXES: Registry[MixSpec] = Registry("mix")
MIXES.register("none", MixSpec(None))
MIXES.register("mixup", MixSpec(_blend, {"mixup_alpha": 1.0, "cutmix_alpha": 0.0}))
MIXES.register("cutmix", MixSpec(_box, {"mixup_alpha": 0.0, "cutmix_alpha": 1.0}))
MIXES.register(
    "mixup_cutmix",
    MixSpec(
        lambda x, p, alpha, lam: (_box if np.random.rand() < 0.5 else _blend)(x, p, alpha, lam),
        {"mixup_alpha": 1.0, "cutmix_alpha": 1.0},
    ),
)  # one of the two per batch, with even odds (timm's switch_prob)
MIXES.register("vhalves", MixSpec(_halves(3)))  # a vertical cut: left and right halves
MIXES.register("hhalves", MixSpec(_halves(2)))  # a horizontal cut: top and bottom halves


def soft_targets(
    classes: torch.Tensor, partner: Any, lam: float, width: int = NUM_CLASSES
) -> torch.Tensor:
    """``lam * one_hot(classes) + (1 - lam) * one_hot(classes[partner])``: (n, width) rows
    summing to 1."""
    return _mix_soft(torch.nn.functional.one_hot(classes.long(), width).float(), partner, lam)


def _is_soft(targets: Any) -> bool:
    first = targets[TASKS[0]] if isinstance(targets, dict) else targets
    return bool(first.is_floating_point())


def _mix_soft(targets: Any, partner: np.ndarray, lam: float) -> Any:
    """``lam * target + (1 - lam) * partner's target`` of soft targets (per head for a dict)."""
    if isinstance(targets, dict):
        return {h: _mix_soft(t, partner, lam) for h, t in targets.items()}
    return targets * lam + targets[torch.as_tensor(partner, device=targets.device)] * (1.0 - lam)


def _like(targets: Any, soft: torch.Tensor) -> Any:
    """The (n, 18) soft targets in the form of ``targets``: per-head marginals for a dict."""
    if isinstance(targets, dict):
        return dict(zip(TASKS, heads_from_joint(soft), strict=True))
    return soft


class Mixer:
    """``mixer(images, targets) -> (images, soft targets)``, the images changed in place; the
    arguments are the ``--mix*`` options and ``--head``. A batch left unmixed (probability
    ``1 - prob``) still gets soft (one-hot) targets: the loss sees one kind all epoch."""

    def __init__(
        self,
        mix: str,
        *,
        pairs: str = "random",
        alpha: float = 1.0,
        lam: tuple[float, float] = (0.4, 0.6),
        prob: float = 1.0,
        head: str = "single",
    ) -> None:
        self.spec, self.pairs = MIXES.use(mix), MIX_PAIRS.use(pairs)
        self.alpha, self.lam, self.prob = alpha, tuple(lam), prob
        task = head_task(head)  # a per-task head's targets are its task's values
        self.width = NUM_CLASSES if task is None else TASK_SIZES[task]
        self.timm = None
        if self.spec.timm is not None and pairs == "random":
            alphas = {k: v * alpha for k, v in self.spec.timm.items()}
            self.timm = Mixup(**alphas, prob=prob, label_smoothing=0.0, num_classes=self.width)

    def __call__(self, images: torch.Tensor, targets: Any) -> tuple[torch.Tensor, Any]:
        classes, soft = target_classes(targets), _is_soft(targets)
        # timm pairs row i with row n-1-i, and one-hots class ids (never soft targets)
        if self.timm is not None and not soft and len(images) % 2 == 0:
            images, soft = self.timm(images, classes)
            return images, _like(targets, soft)
        lam, partner = 1.0, np.arange(len(images))
        if self.spec.mix is not None and np.random.rand() < self.prob:
            partner = self.pairs(classes.cpu().numpy())
            lam = self.spec.mix(images, partner, self.alpha, self.lam)
        if soft:
            return images, _mix_soft(targets, partner, lam)
        return images, _like(targets, soft_targets(classes, partner, lam, self.width))


def build_mixer(
    mix: str,
    *,
    pairs: str = "random",
    alpha: float = 1.0,
    lam: tuple[float, float] = (0.4, 0.6),
    prob: float = 1.0,
    head: str = "single",
) -> Mixer | None:
    """The :class:`Mixer` of these arguments, or None when ``mix`` is ``none``."""
    if MIXES.get(mix).mix is None:
        return None
    return Mixer(mix, pairs=pairs, alpha=alpha, lam=lam, prob=prob, head=head)


def mix_active(epoch: int, *, mix: str, epochs: int, off_epochs: int = 0) -> bool:
    """Whether batches of ``epoch`` (1-based of ``epochs``) are mixed with ``mix``: all but the
    last ``off_epochs`` (``--mix-off-epochs``)."""
    return mix != "none" and epoch <= epochs - off_epochs
