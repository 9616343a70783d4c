"""Model heads: the modules on top of the backbone, each declaring the kind of output it gives.

Training and inference never look at a head's name, only at its output kind
(:data:`OUTPUT_KINDS`):

- ``"joint"``: one ``(n, 18)`` logits tensor; trained on the 18-way class id (``cfg.loss``).
- ``"heads"``: a dict ``{"mask": (n, 3), "gender": (n, 2), "age": (n, 3)}`` of logits; trained
  on the three ids (``cfg.head_losses`` / ``cfg.loss``, weighted by ``cfg.head_weights``).
- ``"mask"``, ``"gender"``, ``"age"``: one task only, ``(n, 3)``, ``(n, 2)`` or ``(n, 3)``
  logits, trained on that task's id (``cfg.loss``). Such a run's probabilities are the task's
  (``OutputKind.task`` says which), never 18-way: the ensembler merges a mask, a gender and an
  age run (docs/ensembling.md, "Per-task runs").

Each kind also trains on soft targets (soft pseudo-labels): :attr:`OutputKind.soft_target`.

So a new head of either kind is one decorated builder; ``fit``, ``predict`` and the config
checks accept it by name (a name of the example's own: recipes/torchvision_resnet18.py
registers ``dropout_linear`` in the same process-wide registry):

>>> from torch import nn
>>> @register_head("example_head", kind="joint")
... def example_head(in_features: int) -> nn.Module:
...     return nn.Sequential(nn.Dropout(0.3), nn.Linear(in_features, 18))
>>> HEADS["example_head"].kind
'joint'
>>> _ = HEADS.unregister("example_head")  # (so this example leaves the registry as it was)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

import torch
from torch import nn

from kit.labels import (
    HEAD_SIZES,
    NUM_CLASSES,
    TASKS,
    decode,
    encode,
    heads_from_joint,
    joint_from_heads,
)
from kit.registry import Registry, UnknownName, registerer

__all__ = [
    "HEADS",
    "OUTPUT_KINDS",
    "HeadSpec",
    "MultiHead",
    "OutputKind",
    "head_soft_target",
    "head_spec",
    "head_target",
    "head_task",
    "register_head",
    "target_classes",
    "to_probs",
]

Builder = TypeVar("Builder", bound=Callable[[int], nn.Module])


@dataclass(frozen=True)
class OutputKind:
    """What a kind of head output is trained on and how it becomes probabilities."""

    description: str
    #: 18-way training class id -> the target the loss compares the output with.
    target: Callable[[int], Any]
    #: model output -> ``(n, 18)`` probabilities, or ``(n, classes of task)`` for a task kind.
    probs: Callable[[Any], torch.Tensor]
    #: the one task (``"mask"``, ``"gender"``, ``"age"``) a per-task kind predicts; None for
    #: kinds whose probabilities are 18-way.
    task: str | None = None
    #: 18-way probabilities ``(18,)`` -> the soft target of this kind (float32 tensors: the
    #: vector, the three marginals, or the task's marginal); None: it takes none.
    soft_target: Callable[[Any], Any] | None = None

    @property
    def width(self) -> int:
        """Columns of :attr:`probs`: 18, or the task's number of values."""
        return NUM_CLASSES if self.task is None else HEAD_SIZES[self.task]


def _joint_probs(output: torch.Tensor) -> torch.Tensor:
    return torch.softmax(output.float(), dim=1)


def _heads_probs(output: Mapping[str, torch.Tensor]) -> torch.Tensor:
    soft = {h: torch.softmax(output[h].float(), dim=1) for h in HEAD_SIZES}
    return joint_from_heads(soft["mask"], soft["gender"], soft["age"])


def _heads_target(label: int) -> dict[str, int]:
    return dict(zip(TASKS, decode(label), strict=True))


def _marginals(p18: Any) -> dict[str, torch.Tensor]:
    rows = heads_from_joint(torch.as_tensor(p18, dtype=torch.float32)[None])
    return {h: m[0] for h, m in zip(TASKS, rows, strict=True)}


def _joint_soft(p18: Any) -> torch.Tensor:
    return torch.as_tensor(p18, dtype=torch.float32)


def _task_soft(task: str, p18: Any) -> torch.Tensor:
    return _marginals(p18)[task]


#: output kind -> how it is trained and read. The loss of each kind is built by
#: ``kit.losses.build_criterion``.
OUTPUT_KINDS: Registry[OutputKind] = Registry("output_kind")
OUTPUT_KINDS.register(
    "joint", OutputKind("one (n, 18) logits tensor", int, _joint_probs, soft_target=_joint_soft)
)
OUTPUT_KINDS.register(
    "heads",
    OutputKind(
        "a dict of mask / gender / age logits", _heads_target, _heads_probs, soft_target=_marginals
    ),
)


def _task_value(index: int, label: int) -> int:
    return decode(label)[index]


def _task_target(index: int) -> Callable[[int], int]:
    return partial(_task_value, index)  # a partial, not a lambda: DataLoader workers pickle it


for _i, _task in enumerate(TASKS):
    OUTPUT_KINDS.register(
        _task,
        OutputKind(
            f"one (n, {HEAD_SIZES[_task]}) {_task} logits tensor",
            _task_target(_i),
            _joint_probs,  # a softmax over the task's values
            task=_task,
            soft_target=partial(_task_soft, _task),
        ),
    )


@dataclass(frozen=True)
class HeadSpec:
    """A registered head: ``build(in_features) -> nn.Module`` giving outputs of ``kind``."""

    build: Callable[[int], nn.Module]
    kind: str


def _describe(name: str, spec: HeadSpec) -> str:
    return f"{name} ({spec.kind})"


#: head name (``cfg.head``) -> its builder and output kind; add entries with register_head.
HEADS: Registry[HeadSpec] = Registry("head", describe=_describe)


def register_head(name: str, kind: str, *, overwrite: bool = False) -> Callable[[Builder], Builder]:
    """Decorator adding a head builder (``in_features -> nn.Module``) to :data:`HEADS`.

    ``kind`` is a key of :data:`OUTPUT_KINDS`: what the module's forward returns.
    """
    if kind not in OUTPUT_KINDS:
        raise UnknownName(OUTPUT_KINDS.unknown_message(kind, f"head {name!r}: unknown output kind"))
    add = HEADS.register(name, overwrite=overwrite)  # checks the name now, not at decoration

    def decorate(build: Builder) -> Builder:
        add(HeadSpec(build, kind))
        return build

    return decorate


def head_spec(name: str) -> HeadSpec:
    """The :class:`HeadSpec` of ``name``; :class:`~kit.registry.UnknownName` if unknown."""
    spec = HEADS.get(name)
    if spec.kind not in OUTPUT_KINDS:  # an entry registered without register_head
        raise UnknownName(OUTPUT_KINDS.unknown_message(spec.kind, f"head {name!r} has output kind"))
    return spec


def head_target(name: str) -> Callable[[int], Any]:
    """The training target of head ``name`` for an 18-way class id (its kind's ``target``):
    the id itself for ``"joint"`` heads, a ``{mask, gender, age}`` dict for ``"heads"``."""
    return OUTPUT_KINDS.use(head_spec(name).kind).target


def head_soft_target(name: str) -> Callable[[Any], Any]:
    """The soft training target of head ``name`` for 18-way probabilities ``(18,)``: the
    vector for ``"joint"`` heads, the three marginals for ``"heads"``, a per-task head's
    marginal."""
    kind = head_spec(name).kind
    soft = OUTPUT_KINDS.use(kind).soft_target
    if soft is None:
        raise ValueError(f"head {name!r}: output kind {kind!r} declares no soft_target")
    return soft


def target_classes(targets: Any) -> torch.Tensor:
    """Class ids of a batch of training targets: 18-way ids (a dict of head ids encoded), a
    per-task head's values; soft targets (float rows) by their most likely value."""
    if isinstance(targets, Mapping):
        return encode(*(target_classes(targets[h]) for h in TASKS))
    return targets.argmax(1) if targets.is_floating_point() else targets


def head_task(name: str) -> str | None:
    """The one task head ``name`` predicts (``"mask"``, ``"gender"``, ``"age"``), or None when
    its probabilities are 18-way."""
    return OUTPUT_KINDS.get(head_spec(name).kind).task


def to_probs(output: torch.Tensor | Mapping[str, torch.Tensor], kind: str | None = None) -> Any:
    """Probabilities of a head's ``output`` of ``kind`` (by default: ``"heads"`` for a dict,
    else ``"joint"``): ``(n, 18)``, or the task's ``(n, k)`` for a per-task kind."""
    if kind is None:
        kind = "heads" if isinstance(output, Mapping) else "joint"
    return OUTPUT_KINDS.use(kind).probs(output)


@register_head("single", "joint")
def _linear(in_features: int) -> nn.Module:
    """One linear layer to the 18 classes."""
    return nn.Linear(in_features, NUM_CLASSES)


@register_head("multi", "heads")
class MultiHead(nn.Module):
    """Three linear heads on shared features: ``{"mask": (n,3), "gender": (n,2), "age": (n,3)}``."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({h: nn.Linear(in_features, k) for h, k in HEAD_SIZES.items()})

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {h: layer(features) for h, layer in self.heads.items()}


def _task_head(task: str) -> Callable[[int], nn.Module]:
    def build(in_features: int) -> nn.Module:
        return nn.Linear(in_features, HEAD_SIZES[task])

    build.__doc__ = f"One linear layer to the {HEAD_SIZES[task]} {task} values (a per-task run)."
    return build


for _task in TASKS:  # heads "mask", "gender", "age": one task each
    register_head(_task, _task)(_task_head(_task))


# last, once everything register_head uses is defined: kit.register_head (kit.registry's, which
# imports no torch) registers through it, including what it was given before this import
registerer("head")(register_head)
