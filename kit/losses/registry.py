"""The loss registry and ``build_loss``: spec strings such as ``"0.5*focal+0.5*f1"``."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["LOSSES", "WeightedSumLoss", "build_loss", "register_loss"]

LossFactory = Callable[..., nn.Module]
#: name -> factory; a factory takes keyword arguments and returns the loss module.
LOSSES: dict[str, LossFactory] = {}
#: Arguments ``build_loss`` hands to every component whose factory declares them.
_CONTEXT = ("num_classes", "labels")
_TERM = re.compile(r"^\s*(?:(?P<weight>\d+(?:\.\d*)?|\.\d+)\s*\*\s*)?(?P<name>[A-Za-z_]\w*)\s*$")


def register_loss(name: str, *, overwrite: bool = False) -> Callable[[LossFactory], LossFactory]:
    """Decorator adding a loss factory (function or ``nn.Module`` class) to :data:`LOSSES`.

    The factory's keyword parameters become the keyword arguments ``build_loss`` accepts for
    it; ``num_classes`` and ``labels`` are filled in by ``build_loss`` when declared.
    """
    if not re.fullmatch(r"[A-Za-z_]\w*", name):
        raise ValueError(f"loss name must be an identifier, got {name!r}")

    def decorate(factory: LossFactory) -> LossFactory:
        if name in LOSSES and not overwrite and LOSSES[name] is not factory:
            raise ValueError(
                f"loss {name!r} is already registered ({LOSSES[name]!r}); "
                f"pass overwrite=True to replace it"
            )
        LOSSES[name] = factory
        return factory

    return decorate


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


def _parse(spec: str) -> list[tuple[float, str]]:
    terms = []
    for part in spec.split("+"):
        match = _TERM.match(part)
        if match is None:
            raise ValueError(
                f"cannot read loss spec {spec!r} at {part.strip()!r}; expected terms like "
                f"'focal' or '0.5*focal' joined by '+'"
            )
        weight = match["weight"]
        terms.append((float(weight) if weight else 1.0, match["name"]))
    return terms


def _accepted(factory: LossFactory) -> set[str] | None:
    """Keyword names the factory takes; None when it takes ``**kwargs`` (anything)."""
    params = inspect.signature(factory).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def build_loss(
    spec: str, *, num_classes: int | None = None, labels: Any = None, **kwargs: Any
) -> nn.Module:
    """A loss module from a spec: a registered name, or a ``+`` sum of ``[weight*]name``.

    ``num_classes`` and ``labels`` (training labels, for ``class_weights="balanced"``) go to
    every component that declares them; every other keyword goes to each component that
    accepts it, and one no component accepts is an error. ``forward(logits, target)``.
    """
    if not isinstance(spec, str):
        raise TypeError(f"loss spec must be a string such as 'focal+f1', got {spec!r}")
    terms = _parse(spec)
    unknown = sorted({name for _, name in terms if name not in LOSSES})
    if unknown:
        raise ValueError(f"unknown loss {', '.join(unknown)} in {spec!r}; known: {sorted(LOSSES)}")
    accepted = {name: _accepted(LOSSES[name]) for _, name in terms}
    unused = [
        key
        for key in kwargs
        if all(acc is not None and key not in acc for acc in accepted.values())
    ]
    if unused:
        takes = {name: sorted((acc or set()) - set(_CONTEXT)) for name, acc in accepted.items()}
        raise ValueError(f"no loss in {spec!r} accepts {unused}; each accepts: {takes}")
    context = {"num_classes": num_classes, "labels": labels}
    modules = []
    for weight, name in terms:
        acc = accepted[name]
        args = {k: v for k, v in kwargs.items() if acc is None or k in acc}
        args.update(
            {k: v for k, v in context.items() if v is not None and (acc is None or k in acc)}
        )
        modules.append((weight, LOSSES[name](**args)))
    if len(modules) == 1 and modules[0][0] == 1.0:
        return modules[0][1]
    return WeightedSumLoss(modules)
