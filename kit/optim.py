"""How training minimises its loss (:func:`kit.losses.build_criterion`): the optimizer and the
learning-rate scheduler (timm's), the :class:`Parts` that train together and the refit schedules
:data:`REFITS` (what trains after validation).

``cfg.optimizer`` is any timm optimizer name or one of :data:`OPTIMIZERS`, over the parameter
groups of :func:`param_groups`. Schedulers (:data:`SCHEDULERS`) step per optimizer update
(``step_update(num_updates)``, after gradient accumulation) with a linear warmup of
``cfg.warmup_epochs``, and hear the validation macro F1 at every epoch end
(``step(epoch, metric)``; only ``plateau`` listens). Their state goes into ``last.pt``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from timm.optim import (
    create_optimizer_v2,
    list_optimizers,
    param_groups_layer_decay,
    param_groups_weight_decay,
)
from timm.scheduler import CosineLRScheduler, StepLRScheduler
from timm.scheduler.scheduler import Scheduler
from timm.utils import ModelEmaV3
from torch import nn

from kit.config import Config
from kit.device import pick_amp
from kit.registry import Registry, UnknownName, did_you_mean

__all__ = [
    "OPTIMIZERS",
    "REFITS",
    "SCHEDULERS",
    "Parts",
    "RefitSpec",
    "SchedulerSpec",
    "backbone_and_head",
    "build_optimizer",
    "build_parts",
    "build_scheduler",
    "check_scheduler_kwargs",
    "epoch_steps",
    "freeze_backbone",
    "optimizer_names",
    "optimizer_steps",
    "param_groups",
]


def _check_optimizer(value: Any, field: str | None, cfg: Config | None) -> None:
    valid = optimizer_names()
    if value not in valid:
        what = "optimizer" if field is None else f"config field {field!r} is"
        raise UnknownName(
            f"{what} {value!r}{did_you_mean(str(value), valid, n=3)}: expected a timm optimizer "
            'name (python -c "import timm.optim; print(timm.optim.list_optimizers())") or '
            "one registered in kit.optim.OPTIMIZERS"
        )


#: optimizers of one's own: name -> ``builder(param_groups, lr=, weight_decay=, momentum=)`` ->
#: Optimizer. Every timm optimizer name (``timm.optim.list_optimizers()``) is valid without an
#: entry here; an entry of the same name wins. The param groups carry their ``lr_scale`` (which
#: timm's schedulers apply).
OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry(
    "optimizer", check=_check_optimizer
)


def optimizer_names() -> list[str]:
    """The names ``cfg.optimizer`` accepts: timm's optimizers and the registered ones."""
    return sorted(set(list_optimizers()) | set(OPTIMIZERS.names()))


def backbone_and_head(model: nn.Module) -> tuple[nn.Module, nn.Module | None]:
    """A kit model's ``backbone`` and ``head`` (``kit.models.Classifier``); any other module is
    all backbone, with no head."""
    backbone, head = getattr(model, "backbone", None), getattr(model, "head", None)
    if isinstance(backbone, nn.Module) and isinstance(head, nn.Module):
        return backbone, head
    return model, None


def param_groups(
    model: nn.Module,
    *,
    weight_decay: float = 0.0,
    layer_decay: float | None = None,
    backbone_lr_scale: float = 1.0,
) -> list[dict[str, Any]]:
    """The parameter groups of ``model``: the head at the optimizer's rate, the backbone at
    ``backbone_lr_scale`` times it and, with ``layer_decay``, each block at ``layer_decay``
    times the rate of the block above (timm's ``param_groups_layer_decay``). Biases and norm
    weights take no weight decay, as timm does."""
    backbone, head = backbone_and_head(model)
    wd = weight_decay
    no_decay = getattr(backbone, "no_weight_decay", lambda: set())()
    if layer_decay is not None:
        groups = param_groups_layer_decay(
            backbone, wd, no_weight_decay_list=no_decay, layer_decay=layer_decay
        )
    else:
        groups = param_groups_weight_decay(backbone, wd, no_weight_decay_list=no_decay)
    for group in groups:
        group["lr_scale"] = group.get("lr_scale", 1.0) * backbone_lr_scale
    if head is not None:
        groups += [dict(g, lr_scale=1.0) for g in param_groups_weight_decay(head, wd)]
    return [g for g in groups if g["params"]]


def build_optimizer(
    model: nn.Module,
    optimizer: str,
    *,
    lr: float,
    weight_decay: float = 0.0,
    momentum: float = 0.9,
    layer_decay: float | None = None,
    backbone_lr_scale: float = 1.0,
) -> torch.optim.Optimizer:
    """``optimizer`` over ``model``: an entry of :data:`OPTIMIZERS`, else timm's
    ``create_optimizer_v2`` (its ``sgd`` has Nesterov momentum). Without ``layer_decay`` and
    ``backbone_lr_scale``, timm groups the whole model itself, as runs trained before those
    fields did, so their ``last.pt`` resumes; otherwise the groups are :func:`param_groups`."""
    plain = layer_decay is None and backbone_lr_scale == 1.0
    groups = functools.partial(
        param_groups,
        weight_decay=weight_decay,
        layer_decay=layer_decay,
        backbone_lr_scale=backbone_lr_scale,
    )
    if optimizer in OPTIMIZERS:
        build = OPTIMIZERS.use(optimizer)
        return build(groups(model), lr=lr, weight_decay=weight_decay, momentum=momentum)
    _check_optimizer(optimizer, "optimizer", None)
    params = model if plain else groups(model)
    return create_optimizer_v2(
        params, optimizer, lr=lr, weight_decay=weight_decay, momentum=momentum
    )


def freeze_backbone(model: nn.Module, frozen: bool) -> None:
    """Stop (``frozen``) or restart the training of ``model``'s backbone (fastai's ``freeze``):
    no gradient, so the optimizer leaves it and its moments alone. A model without a head is
    never frozen."""
    backbone, head = backbone_and_head(model)
    if head is None:
        return
    for param in backbone.parameters():
        param.requires_grad_(not frozen)


class _Plateau(StepLRScheduler):
    """Constant after warmup; the rate shrinks by ``factor`` at the end of an epoch after more
    than ``patience`` epochs without a better val macro F1. Not timm's ``PlateauLRScheduler``:
    that is deprecated, steps only per epoch and forgets its counters on resume (these live in
    ``__dict__``, which timm's ``state_dict`` saves)."""

    def __init__(self, optimizer: Any, patience: float, factor: float, **warmup: Any) -> None:
        super().__init__(optimizer, decay_t=1, decay_rate=1.0, t_in_epochs=False, **warmup)
        self.patience, self.factor = patience, factor
        self.best, self.bad_epochs, self.scale, self.t = -math.inf, 0, 1.0, 0

    def _get_lr(self, t: int) -> list[float]:
        return [lr * self.scale for lr in super()._get_lr(t)]

    def step_update(self, num_updates: int, metric: float | None = None) -> None:
        self.t = num_updates
        super().step_update(num_updates, metric)

    def step(self, epoch: int, metric: float | None = None) -> None:
        if metric is None:
            return
        if metric > self.best:
            self.best, self.bad_epochs = metric, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > self.patience:
            self.scale, self.bad_epochs = self.scale * self.factor, 0
            self.update_groups(self._get_lr(self.t))

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.update_groups(self._get_lr(self.t))


@dataclass(frozen=True)
class SchedulerSpec:
    """A scheduler kit accepts: ``build(optimizer, lr, epochs, steps_per_epoch, warmup,
    kwargs)`` (``warmup``: timm's warmup arguments; ``kwargs``: ``--scheduler-kwargs``) and the
    ``scheduler_kwargs`` keys it reads."""

    build: Callable[..., Scheduler]
    kwargs: tuple[str, ...] = ()


SCHEDULERS: Registry[SchedulerSpec] = Registry("scheduler")
Warmup, Kwargs = dict[str, Any], dict[str, float]  # timm's warmup arguments, scheduler_kwargs


def _cosine(opt: Any, lr: float, epochs: int, spe: int, warmup: Warmup, kw: Kwargs) -> Any:
    total = spe * epochs
    return CosineLRScheduler(
        opt,
        t_initial=max(1, total - warmup["warmup_t"]),
        lr_min=lr * kw.get("min_lr_ratio", 0.0),
        warmup_prefix=True,
        t_in_epochs=False,
        **warmup,
    )


def _step(opt: Any, lr: float, epochs: int, spe: int, warmup: Warmup, kw: Kwargs) -> Any:
    every = kw.get("step_epochs") or epochs / 3
    return StepLRScheduler(
        opt,
        decay_t=every * spe,
        decay_rate=kw.get("gamma", 0.1),
        warmup_prefix=False,  # decay counts epochs from the start, warmup included
        t_in_epochs=False,
        **warmup,
    )


def _plateau(opt: Any, lr: float, epochs: int, spe: int, warmup: Warmup, kw: Kwargs) -> Any:
    return _Plateau(opt, kw.get("patience", 1), kw.get("factor", 0.1), **warmup)


def _constant(opt: Any, lr: float, epochs: int, spe: int, warmup: Warmup, kw: Kwargs) -> Any:
    return StepLRScheduler(opt, decay_t=1, decay_rate=1.0, t_in_epochs=False, **warmup)


SCHEDULERS.register("cosine", SchedulerSpec(_cosine, ("min_lr_ratio",)))
SCHEDULERS.register("step", SchedulerSpec(_step, ("step_epochs", "gamma")))
SCHEDULERS.register("plateau", SchedulerSpec(_plateau, ("patience", "factor")))
SCHEDULERS.register("none", SchedulerSpec(_constant))


def check_scheduler_kwargs(scheduler: str, kwargs: Mapping[str, Any]) -> None:
    """ValueError naming ``scheduler_kwargs`` when ``kwargs`` has keys ``scheduler`` does not
    read."""
    allowed = SCHEDULERS.get(scheduler).kwargs
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"config field 'scheduler_kwargs' has {unknown} for scheduler {scheduler!r}; "
            f"it accepts {list(allowed) or 'no arguments'}"
        )


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    scheduler: str,
    *,
    lr: float,
    epochs: int,
    steps_per_epoch: int,
    warmup_epochs: float = 0.0,
    scheduler_kwargs: Mapping[str, Any] | None = None,
) -> Any:
    """``scheduler`` (``--scheduler``, :data:`SCHEDULERS`) over ``optimizer`` at peak rate
    ``lr`` for ``epochs`` of ``steps_per_epoch`` updates.

    The warmup rises linearly over ``round(warmup_epochs * steps_per_epoch)`` updates from
    ``lr / (warmup + 1)`` (so the first update already learns) to ``lr``.
    """
    kwargs = dict(scheduler_kwargs or {})
    check_scheduler_kwargs(scheduler, kwargs)
    spe = max(1, steps_per_epoch)
    warm = min(round(warmup_epochs * spe), spe * epochs - 1)
    warmup = {"warmup_t": warm, "warmup_lr_init": lr / (warm + 1) if warm > 0 else 0.0}
    return SCHEDULERS.use(scheduler).build(optimizer, lr, epochs, spe, warmup, kwargs)


def epoch_steps(loader: Any, max_steps: int | None = None) -> int:
    """Batches per training epoch (``max_steps``, ``--max-steps-per-epoch``, caps it)."""
    return min(len(loader), max_steps or len(loader))


def optimizer_steps(loader: Any, max_steps: int | None = None, grad_accum: int = 1) -> int:
    """Optimizer steps per epoch, after gradient accumulation of ``grad_accum`` batches."""
    return math.ceil(epoch_steps(loader, max_steps) / grad_accum)


@dataclass
class Parts:
    """What trains. ``last.pt`` holds the state of every part named in :attr:`SAVED` (and of
    the weight average ``ema`` when there is one)."""

    model: nn.Module  # the plain module: checkpoints keep plain weight names
    optimizer: torch.optim.Optimizer
    scheduler: Any  # a timm scheduler
    scaler: torch.amp.GradScaler
    module: nn.Module | None = None  # what the training step calls (wrapped model); None: model
    ema: ModelEmaV3 | None = None  # the moving average of the weights (cfg.ema)

    SAVED: ClassVar[tuple[str, ...]] = ("model", "optimizer", "scheduler", "scaler")

    @property
    def trained(self) -> nn.Module:
        """The module the training step calls."""
        return self.model if self.module is None else self.module

    @property
    def evaluated(self) -> nn.Module:
        """The weights validation scores, ``best.pt`` keeps and the submission uses: the
        moving average with ``cfg.ema``, else the model itself."""
        return self.model if self.ema is None else self.ema.module

    def update_ema(self, step: int) -> None:
        """Move the average towards the model after optimizer step ``step`` (from 1)."""
        if self.ema is not None:
            self.ema.update(self.model, step=step)


def build_parts(cfg: Config, model: nn.Module, steps_per_epoch: int, device: torch.device) -> Parts:
    """Optimizer, scheduler, gradient scaler and (with ``cfg.ema``) weight average of
    ``model`` (``module`` left unset)."""
    optimizer = build_optimizer(
        model,
        cfg.optimizer,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        momentum=cfg.momentum,
        layer_decay=cfg.layer_decay,
        backbone_lr_scale=cfg.backbone_lr_scale,
    )
    scheduler = build_scheduler(
        optimizer,
        cfg.scheduler,
        lr=cfg.lr,
        epochs=cfg.epochs,
        steps_per_epoch=steps_per_epoch,
        warmup_epochs=cfg.warmup_epochs,
        scheduler_kwargs=cfg.scheduler_kwargs,
    )
    scaler = pick_amp(cfg, device).scaler()  # enabled for float16 autocast only
    ema = None
    if getattr(cfg, "ema", False):
        # timm's warmup: decay 1 - (1 + step)^-3/4, capped at ema_decay (3/4: timm's advice
        # for runs of under a million steps)
        ema = ModelEmaV3(model, decay=cfg.ema_decay, use_warmup=cfg.ema_warmup, warmup_power=0.75)
    return Parts(model, optimizer, scheduler, scaler, ema=ema)


@dataclass(frozen=True)
class RefitSpec:
    """A refit: ``config(cfg, best_epoch)`` is the config it trains with (None: no refit);
    ``from_best`` starts it from ``best.pt``'s weights instead of new ones."""

    config: Callable[[Config, int], Config] | None
    from_best: bool = False


#: refit name (``cfg.refit``) -> what it trains after the validated run.
REFITS: Registry[RefitSpec] = Registry("refit")
REFITS.register("none", RefitSpec(None))


# the 1st place's last step: a few epochs on the validation people too, at a tenth of the rate
def _continue(cfg: Config, best_epoch: int) -> Config:
    # the backbone is trained already: no head-only epochs again
    return cfg.replace(epochs=cfg.refit_epochs, warmup_epochs=0.0, lr=cfg.lr / 10, freeze_epochs=0)


REFITS.register("continue", RefitSpec(_continue, from_best=True))


def _all(cfg: Config, best_epoch: int) -> Config:
    return cfg.replace(epochs=best_epoch, freeze_epochs=min(cfg.freeze_epochs, best_epoch - 1))


REFITS.register("all", RefitSpec(_all))
