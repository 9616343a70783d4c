"""Losses for the 18-class problem and for three-head models, built from short spec strings.

>>> loss = build_loss("0.5*focal+0.5*f1", num_classes=18, gamma=2.0)
>>> loss = build_multihead_loss({"mask": "cross_entropy", "gender": "cross_entropy",
...                              "age": "focal"}, weights={"age": 2.0})

A loss takes ``logits (n, C)`` and ``target``: class ids ``(n,)`` or, in mixed batches
(``cfg.mix``), soft targets ``(n, C)``, and returns a scalar. C always comes from the logits
(the official baseline's F1 loss defaulted to 3 classes on the 18-class problem). Add your own
with ``@register_loss("name")``. The loss a config trains is :func:`build_criterion`'s.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kit.config import Config
from kit.labels import NUM_CLASSES, TASK_SIZES, TASKS, decode
from kit.models import head_spec
from kit.registry import Registry, UnknownName, registerer

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

LossFactory = Callable[..., nn.Module]
#: Arguments ``build_loss`` hands to every component whose factory declares them.
_CONTEXT = ("num_classes", "labels")
_TERM = re.compile(r"^\s*(?:(?P<weight>\d+(?:\.\d*)?|\.\d+)\s*\*\s*)?(?P<name>[A-Za-z_]\w*)\s*$")


def _accepted(factory: LossFactory) -> set[str] | None:
    """Keyword names the factory takes; None when it takes ``**kwargs`` (anything)."""
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def _takes(factory: LossFactory) -> list[str]:
    """The keyword arguments a user can give the factory (``build_loss`` fills the context)."""
    acc = _accepted(factory)
    return ["**kwargs"] if acc is None else sorted(acc - set(_CONTEXT))


def _describe(name: str, factory: LossFactory) -> str:
    return f"{name}({', '.join(_takes(factory))})"


def check_spec(spec: Any, kwargs: Mapping[str, Any] | None = None) -> list[tuple[float, str]]:
    """The ``(weight, name)`` terms of a loss spec, checked without building anything.

    Raises TypeError for a non-string, ValueError for a spec that does not parse,
    :class:`~kit.registry.UnknownName` for an unregistered loss, and ValueError for a keyword
    argument that no component's factory accepts (the message lists what each accepts).
    """
    if not isinstance(spec, str):
        raise TypeError(f"loss spec must be a string such as 'focal+f1', got {spec!r}")
    terms = []
    for part in spec.split("+"):
        match = _TERM.match(part)
        if match is None:
            raise ValueError(
                f"cannot read loss spec {spec!r} at {part.strip()!r}; expected terms like "
                f"'focal' or '0.5*focal' joined by '+'"
            )
        terms.append((float(match["weight"] or 1.0), match["name"]))
    for _, name in terms:
        if name not in LOSSES:
            where = "" if spec.strip() == name else f"loss spec {spec!r}: "
            raise UnknownName(where + LOSSES.unknown_message(name))
    accepted = {name: _accepted(LOSSES.get(name)) for _, name in terms}
    unused = [
        key
        for key in kwargs or {}
        if all(acc is not None and key not in acc for acc in accepted.values())
    ]
    if unused:
        takes = {name: _takes(LOSSES.get(name)) for name in accepted}
        raise ValueError(f"no loss in {spec!r} accepts {unused}; each accepts: {takes}")
    return terms


def _named(where: str, check: Callable[[], Any]) -> None:
    """Run ``check``, prefixing its ValueError or TypeError with ``where``."""
    try:
        check()
    except (ValueError, TypeError) as err:
        raise type(err)(f"{where}: {err}") from None


def head_loss_args(
    loss: str,
    *,
    head_losses: Mapping[str, str] | None = None,
    loss_kwargs: Mapping[str, Any] | None = None,
) -> dict[str, tuple[str, dict[str, Any]]]:
    """head -> (loss spec, keyword arguments) of a three-head model: ``head_losses`` per head
    (others ``loss``); ``loss_kwargs`` keys named after a head (``age: {gamma: 2}``) go to
    that head only, other keys to every head."""
    head_losses, loss_kwargs = head_losses or {}, loss_kwargs or {}
    shared = {k: v for k, v in loss_kwargs.items() if k not in TASKS}
    return {
        h: (head_losses.get(h, loss), {**shared, **dict(loss_kwargs.get(h, {}))}) for h in TASKS
    }


def _check(value: Any, field: str | None, cfg: Config | None) -> None:
    """The registry check of the loss fields: ``loss`` (a spec) and ``head_losses`` (head ->
    spec); given the config, ``loss_kwargs`` too, against the losses its head trains with."""
    where = f"config field {field!r}" if field else "loss"
    if isinstance(value, Mapping):
        for head, spec in value.items():
            _named(f"{where} (head {head!r})", lambda spec=spec: check_spec(spec))
        return
    _named(where, lambda: check_spec(value))
    if cfg is None or field != "loss":
        return
    if head_spec(cfg.head).kind != "heads":  # one loss over one output: 18-way or a single task
        _named("config field 'loss_kwargs'", lambda: check_spec(cfg.loss, cfg.loss_kwargs))
    else:
        for head, kw in cfg.loss_kwargs.items():
            if head in TASKS and not isinstance(kw, Mapping):
                raise TypeError(f"config field 'loss_kwargs': {head} must be a dict, got {kw!r}")
        per_head = head_loss_args(
            cfg.loss, head_losses=cfg.head_losses, loss_kwargs=cfg.loss_kwargs
        )
        for head, (spec, kw) in per_head.items():
            source = f"'head_losses' (head {head!r})" if head in cfg.head_losses else "'loss'"
            _named(f"config field {source}", lambda spec=spec: check_spec(spec))
            where = f"config field 'loss_kwargs' (head {head!r})"
            _named(where, lambda spec=spec, kw=kw: check_spec(spec, kw))


#: name -> factory; a factory takes keyword arguments and returns the loss module.
LOSSES: Registry[LossFactory] = Registry("loss", describe=_describe, check=_check)


def register_loss(name: str, *, overwrite: bool = False) -> Callable[[LossFactory], LossFactory]:
    """Decorator adding a loss factory (function or ``nn.Module`` class) to :data:`LOSSES`.

    The factory's keyword parameters become the keyword arguments ``build_loss`` accepts for
    it; ``num_classes`` and ``labels`` are filled in by ``build_loss`` when declared.
    """
    if not re.fullmatch(r"[A-Za-z_]\w*", name):  # stricter than Registry: specs split on + * .
        raise ValueError(f"loss name must be an identifier, got {name!r}")
    return LOSSES.register(name, overwrite=overwrite)


class WeightedSumLoss(nn.Module):
    """``sum(weight_i * loss_i(logits, target))`` over its components."""

    def __init__(self, terms: Sequence[tuple[float, nn.Module]]) -> None:
        super().__init__()
        if not terms:
            raise ValueError("a weighted sum needs at least one loss")
        self.weights = [float(w) for w, _ in terms]
        self.losses = nn.ModuleList(loss for _, loss in terms)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(
            w * loss(logits, target) for w, loss in zip(self.weights, self.losses, strict=True)
        )

    def extra_repr(self) -> str:
        return f"weights={self.weights}"


def build_loss(
    spec: str, *, num_classes: int | None = None, labels: Any = None, **kwargs: Any
) -> nn.Module:
    """A loss module from a spec: a registered name, or a ``+`` sum of ``[weight*]name``.

    ``num_classes`` and ``labels`` (training labels, for ``class_weights="balanced"``) go to
    every component that declares them; every other keyword goes to each component that
    accepts it, and one no component accepts is an error. ``forward(logits, target)``.
    """
    context = {"num_classes": num_classes, "labels": labels}
    given = {**kwargs, **{k: v for k, v in context.items() if v is not None}}
    modules = []
    for weight, name in check_spec(spec, kwargs):
        acc = _accepted(LOSSES.get(name))
        args = {k: v for k, v in given.items() if acc is None or k in acc}
        with LOSSES.calling(name, on=f"keyword arguments {sorted(args)}"):
            modules.append((weight, LOSSES.get(name)(**args)))
    if len(modules) == 1 and modules[0][0] == 1.0:
        return modules[0][1]
    return WeightedSumLoss(modules)


def _same_heads(what: str, got: Mapping[str, Any], expected: list[str]) -> None:
    missing = [h for h in expected if h not in got]
    extra = [h for h in got if h not in expected]
    if missing or extra:
        raise ValueError(
            f"{what} has heads {list(got)}; expected {expected}"
            + (f" (missing {missing})" if missing else "")
            + (f" (unexpected {extra})" if extra else "")
        )


class MultiHeadLoss(nn.Module):
    """``sum_h weights[h] * losses[h](outputs[h], targets[h])``; weights default to 1.

    ``outputs`` and ``targets`` must hold exactly the heads of ``losses``.
    """

    def __init__(
        self, losses: Mapping[str, nn.Module], weights: Mapping[str, float] | None = None
    ) -> None:
        super().__init__()
        if not losses:
            raise ValueError("MultiHeadLoss needs at least one head")
        heads = list(losses)
        weights = dict(weights or {})
        unknown = [h for h in weights if h not in losses]
        if unknown:
            raise ValueError(f"weights name heads {unknown} that have no loss; heads: {heads}")
        self.losses = nn.ModuleDict(losses)
        self.weights = {h: float(weights.get(h, 1.0)) for h in heads}

    def parts(
        self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        """Each head's unweighted loss, for logging."""
        heads = list(self.losses)
        _same_heads("outputs", outputs, heads)
        _same_heads("targets", targets, heads)
        return {h: self.losses[h](outputs[h], targets[h]) for h in heads}

    def forward(
        self, outputs: Mapping[str, torch.Tensor], targets: Mapping[str, torch.Tensor]
    ) -> torch.Tensor:
        parts = self.parts(outputs, targets)
        return sum(self.weights[h] * loss for h, loss in parts.items())

    def extra_repr(self) -> str:
        return f"weights={self.weights}"


def _array(labels: Any) -> np.ndarray:
    """Labels (a sequence, numpy array or torch tensor) as a flat numpy array."""
    return np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels).reshape(-1)


def build_multihead_loss(
    specs: str | Mapping[str, str],
    weights: Mapping[str, float] | None = None,
    labels: Any = None,
    **kwargs_per_head: Mapping[str, Any],
) -> MultiHeadLoss:
    """A :class:`MultiHeadLoss` over the heads ``mask`` (3), ``gender`` (2), ``age`` (3).

    ``specs``: one :func:`build_loss` spec per head, or one string for all heads.
    ``labels``: training labels, as ``{head: ids}`` or as 18-way class ids (decoded), used by
    ``class_weights="balanced"``. Keyword arguments are per head, e.g.
    ``age={"gamma": 2.0, "class_weights": "balanced"}``.
    """
    heads = list(TASKS)
    if isinstance(specs, str):
        specs = dict.fromkeys(heads, specs)
    _same_heads("specs", specs, heads)
    unknown = [h for h in kwargs_per_head if h not in heads]
    if unknown:
        raise ValueError(f"keyword arguments {unknown} are not heads; per-head keywords: {heads}")
    for head, kw in kwargs_per_head.items():
        if not isinstance(kw, Mapping):
            raise TypeError(f"keywords for head {head!r} must be a dict, got {kw!r}")
    if labels is not None and not isinstance(labels, Mapping):  # 18-way class ids
        labels = dict(zip(TASKS, decode(_array(labels)), strict=True))
    losses = {
        h: build_loss(
            specs[h],
            num_classes=TASK_SIZES[h],
            labels=(labels or {}).get(h),
            **kwargs_per_head.get(h, {}),
        )
        for h in heads
    }
    return MultiHeadLoss(losses, weights)


def _heads_criterion(cfg: Config, labels: Any) -> nn.Module:
    args = head_loss_args(cfg.loss, head_losses=cfg.head_losses, loss_kwargs=cfg.loss_kwargs)
    specs = {h: spec for h, (spec, _) in args.items()}
    per_head = {h: kw for h, (_, kw) in args.items() if kw}
    return build_multihead_loss(specs, weights=cfg.head_weights, labels=labels, **per_head)


def _one_criterion(task: str | None, cfg: Config, labels: Any) -> nn.Module:
    """``cfg.loss`` over the 18 classes, or over one ``task``'s values (balanced weights then
    count the task's values)."""
    if task is None:
        return build_loss(cfg.loss, num_classes=NUM_CLASSES, labels=labels, **cfg.loss_kwargs)
    values = None if labels is None else decode(_array(labels))[TASKS.index(task)]
    return build_loss(cfg.loss, num_classes=TASK_SIZES[task], labels=values, **cfg.loss_kwargs)


#: output kind (``kit.models.OUTPUT_KINDS``) -> builder(cfg, labels) of its loss.
CRITERIA: dict[str, Callable[[Any, Any], nn.Module]] = {
    "joint": partial(_one_criterion, None),
    "heads": _heads_criterion,
    **{task: partial(_one_criterion, task) for task in TASKS},
}


def build_criterion(cfg: Config, labels: Any = None) -> nn.Module:
    """The loss of ``cfg`` for its head's output kind (:data:`CRITERIA`): ``cfg.loss``, over
    a per-task head's values for one; per head for ``"heads"`` (:func:`head_loss_args`).
    ``labels`` are the 18-way training labels (for balanced weights)."""
    kind = head_spec(cfg.head).kind
    if kind not in CRITERIA:
        raise ValueError(
            f"head {cfg.head!r} has output kind {kind!r}, which has no loss; "
            f"add a builder to kit.losses.CRITERIA (kinds with one: {sorted(CRITERIA)})"
        )
    return CRITERIA[kind](cfg, labels)


# last, once everything register_loss uses is defined: kit.register_loss (kit.registry's, which
# imports no torch) registers through it, including what it was given before this import
registerer("loss")(register_loss)


# ---- the built-in losses ---------------------------------------------------------------------

ClassWeights = str | Sequence[float] | torch.Tensor | np.ndarray | None


def balanced_weights(labels: Any, num_classes: int) -> torch.Tensor:
    """``n / (num_classes * count_c)`` per class (sklearn's "balanced").

    A class absent from ``labels`` gets weight 0: it cannot occur among those targets, and 0
    keeps the other weights unchanged rather than inventing a count for it.
    """
    arr = _array(labels)
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


def _check_target(logits: torch.Tensor, target: torch.Tensor, expected: int | None = None) -> None:
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


class _Weighted(nn.Module):
    """Shared state of the per-sample losses: optional class weights and a class count."""

    def __init__(self, num_classes: int | None, labels: Any, class_weights: ClassWeights) -> None:
        super().__init__()
        weight = resolve_class_weights(class_weights, num_classes=num_classes, labels=labels)
        if num_classes is None and weight is not None:
            num_classes = len(weight)
        self.num_classes = num_classes
        self.register_buffer("weight", weight)


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
        _check_target(logits, target, self.num_classes)
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
        _check_target(logits, target, self.num_classes)
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
        _check_target(logits, target)
        probs = F.softmax(logits.float(), dim=1)
        soft = target.is_floating_point()
        onehot = target.float() if soft else F.one_hot(target.long(), logits.shape[1]).float()
        tp = (probs * onehot).sum(0)
        # 2TP + FP + FN = (TP + FP) + (TP + FN) = predicted mass + true count
        f1 = 2 * tp / (probs.sum(0) + onehot.sum(0) + self.eps)
        return 1 - f1.mean()

    def extra_repr(self) -> str:
        return f"eps={self.eps}"


# Logit adjustment for the long tail (the >=60 age classes are rare): trained on
# ``logits + tau * log(prior)``, the model learns to beat the priors rather than reproduce them
# and predicts with its plain logits, which then favour the rare classes (Menon et al. 2021;
# ``tau = 1`` is the balanced softmax of Ren et al. 2020).


def class_priors(labels: Any, num_classes: int) -> torch.Tensor:
    """Class shares of ``labels`` with one added to every count (a class missing from the
    training labels gets a small prior, not log 0)."""
    arr = _array(labels)
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
