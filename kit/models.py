"""The model: ``create_model(cfg)``, a backbone with its pretrained weights plus a head of
:data:`HEADS` (docs/architecture.md, "The backbone contract"; docs/pretrained.md).

The backbone ``cfg.model`` is a timm name (``timm.create_model(name, num_classes=0)``),
``torchvision/<name>`` (torchvision's model with its last ``nn.Linear`` replaced by
``nn.Identity``; ``--pretrained`` loads torchvision's weights through torch's hub cache and
normalises with their ``transforms()``) or a name registered with :func:`register_model`. It
maps a normalised ``(n, 3, H, W)`` batch to pooled features ``(n, width)``: ``num_features``,
else measured by one forward pass. The head is ``HEADS[cfg.head].build(width)``.

:func:`resolve_weights` finds pretrained weights as timm would (``--pretrained-file``, else the
Hugging Face cache, else a download) and returns the :class:`Weights` record the run folder
keeps. Offline and not cached it fails at once with :class:`WeightsUnavailable`: one metadata
request with a short timeout and no retry, where huggingface_hub's download retries with
back-off (measured: 23 s to give up).

Training and inference never look at a head's name, only at its output kind
(:data:`OUTPUT_KINDS`): ``"joint"`` (``(n, 18)`` logits, trained on the class id),
``"heads"`` (a dict of ``mask`` ``(n, 3)``, ``gender`` ``(n, 2)`` and ``age`` ``(n, 3)``
logits, trained per head with ``cfg.head_losses`` and ``cfg.head_weights``) or one task
(``"mask"``, ``"gender"``, ``"age"``: that task's logits, whose probabilities are never 18-way;
docs/ensembling.md, "Per-task runs"). Each kind also trains on soft targets. A new head is one
decorated builder (recipes/torchvision_resnet18.py registers one in the same registry):

>>> from torch import nn
>>> @register_head("example_head", kind="joint")
... def example_head(in_features: int) -> nn.Module:
...     return nn.Sequential(nn.Dropout(0.3), nn.Linear(in_features, 18))
>>> HEADS["example_head"].kind
'joint'
>>> _ = HEADS.unregister("example_head")  # (so this example leaves the registry as it was)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlparse

import torch
from torch import nn

from kit._config_checks import (
    pretrained_cfg,
    registered_model,
    torchvision_name,
    torchvision_weights,
    weights_name,
)
from kit.config import Config
from kit.errors import KitError, UserCodeError
from kit.labels import (
    NUM_CLASSES,
    TASK_SIZES,
    TASKS,
    decode,
    encode,
    heads_from_joint,
    joint_from_heads,
)
from kit.registry import Registry, UnknownName, registerer, user_origin

__all__ = [
    "HEADS",
    "MODELS",
    "OUTPUT_KINDS",
    "PROBE_TIMEOUT_S",
    "Classifier",
    "HeadSpec",
    "ModelSpec",
    "MultiHead",
    "OutputKind",
    "Weights",
    "WeightsUnavailable",
    "backbone_width",
    "create_model",
    "head_soft_target",
    "head_spec",
    "head_target",
    "head_task",
    "hub_cache_dir",
    "pretrained_cfg",
    "register_head",
    "register_model",
    "resolve_weights",
    "target_classes",
    "to_probs",
    "torch_hub_checkpoints",
    "weights_name",
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
        return NUM_CLASSES if self.task is None else TASK_SIZES[self.task]


def _joint_probs(output: torch.Tensor) -> torch.Tensor:
    return torch.softmax(output.float(), dim=1)


def _heads_probs(output: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return joint_from_heads(*(torch.softmax(output[h].float(), dim=1) for h in TASKS))


def _heads_target(label: int) -> dict[str, int]:
    return dict(zip(TASKS, decode(label), strict=True))


def _joint_soft(p18: Any) -> torch.Tensor:
    return torch.as_tensor(p18, dtype=torch.float32)


def _marginals(p18: Any) -> dict[str, torch.Tensor]:
    rows = heads_from_joint(_joint_soft(p18)[None])
    return {h: m[0] for h, m in zip(TASKS, rows, strict=True)}


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


for _i, _task in enumerate(TASKS):
    OUTPUT_KINDS.register(
        _task,
        OutputKind(
            f"one (n, {TASK_SIZES[_task]}) {_task} logits tensor",
            partial(_task_value, _i),  # a partial, not a lambda: DataLoader workers pickle it
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
    return _adding(HEADS.register(name, overwrite=overwrite), partial(HeadSpec, kind=kind))


def _adding(add: Callable[[Any], Any], spec: Callable[[Any], Any]) -> Callable[[Builder], Builder]:
    """A decorator adding ``spec(its function)`` through ``add`` (a registry's, made before
    the decoration so that the name is checked at once) and returning the function."""

    def decorate(build: Builder) -> Builder:
        add(spec(build))
        return build

    return decorate


def head_spec(name: str) -> HeadSpec:
    """The :class:`HeadSpec` of ``name``; :class:`~kit.registry.UnknownName` if unknown."""
    spec = HEADS.get(name)
    if spec.kind not in OUTPUT_KINDS:  # an entry registered without register_head
        raise UnknownName(OUTPUT_KINDS.unknown_message(spec.kind, f"head {name!r} has output kind"))
    return spec


def head_target(name: str) -> Callable[[int], Any]:
    """The training target of head ``name`` for an 18-way class id (its kind's ``target``)."""
    return OUTPUT_KINDS.use(head_spec(name).kind).target


def head_soft_target(name: str) -> Callable[[Any], Any]:
    """The soft training target of head ``name`` for 18-way probabilities ``(18,)``."""
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


def _linear(width: int, in_features: int) -> nn.Module:
    """One linear layer to ``width`` outputs: the 18 classes, or a task's values."""
    return nn.Linear(in_features, width)


register_head("single", "joint")(partial(_linear, NUM_CLASSES))
for _task in TASKS:  # heads "mask", "gender", "age": one task each (a per-task run)
    register_head(_task, _task)(partial(_linear, TASK_SIZES[_task]))


@register_head("multi", "heads")
class MultiHead(nn.Module):
    """Three linear heads on shared features: ``{"mask": (n,3), "gender": (n,2), "age": (n,3)}``."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({h: nn.Linear(in_features, k) for h, k in TASK_SIZES.items()})

    def forward(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        return {h: layer(features) for h, layer in self.heads.items()}


# last, once everything register_head uses is defined: kit.register_head (kit.registry's, which
# imports no torch) registers through it, including what it was given before this import
registerer("head")(register_head)


#: Seconds the one hub request that decides "online or not" may take (it is not retried).
PROBE_TIMEOUT_S = 3.0
#: What timm's hub loader tries, in its order, when the pretrained cfg names no file.
_HUB_FILES = ("model.safetensors", "pytorch_model.bin")


class WeightsUnavailable(KitError, ValueError):
    """Pretrained weights that are neither cached, nor downloadable, nor given as a file."""


@dataclass(frozen=True)
class Weights:
    """Which weights a model started from: ``source`` is ``cache`` (already in the Hugging
    Face cache, or torch's hub cache for a torchvision model), ``hub`` (downloaded now) or
    ``file`` (``--pretrained-file``)."""

    source: str
    name: str  # timm name with its tag (resnet10t.c3_in1k), torchvision/resnet18.IMAGENET1K_V1
    hub_id: str | None  # Hugging Face repo, or the URL of torchvision's weights
    file: str
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (for env.json)."""
        return asdict(self)


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache folder in use (``HF_HUB_CACHE``, else ``HF_HOME``/hub)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _sha256(path: Path) -> str:
    # not hashlib.file_digest: kit supports Python 3.10, and it came in 3.11
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unavailable(name: str, hub_id: str, why: str) -> WeightsUnavailable:
    cache = hub_cache_dir()
    folder = cache / f"models--{hub_id.replace('/', '--')}"
    return WeightsUnavailable(
        f"pretrained weights {name!r} ({hub_id}) are not in the Hugging Face cache {cache} "
        f"and cannot be downloaded ({why}). Either fill the cache on a machine with internet: "
        f"python -c \"import timm; timm.create_model('{name}', pretrained=True)\" and copy "
        f"{folder.name} into {cache} (or point HF_HUB_CACHE at a copy); "
        f"or pass --pretrained-file PATH (a timm state_dict of {name!r})"
    )


def _cached(hub_id: str, revision: str | None, files: tuple[str, ...]) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    for filename in files:
        found = try_to_load_from_cache(
            hub_id, filename, cache_dir=hub_cache_dir(), revision=revision
        )
        if isinstance(found, str):
            return Path(found)
    return None


def _download(name: str, hub_id: str, revision: str | None, files: tuple[str, ...]) -> Path:
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    endpoint = os.environ.get("HF_ENDPOINT") or None  # as set now, not at first import
    for filename in files:
        url = hf_hub_url(hub_id, filename, revision=revision, endpoint=endpoint)
        try:
            get_hf_file_metadata(url, timeout=PROBE_TIMEOUT_S)
        except HfHubHTTPError as err:
            status = getattr(getattr(err, "response", None), "status_code", None)
            if status == 404:
                continue  # this repo holds the other file name
            raise _unavailable(name, hub_id, f"the hub answered: {err}") from err
        except Exception as err:  # connection refused, no DNS, timeout: the hub is unreachable
            raise _unavailable(name, hub_id, f"hub unreachable: {type(err).__name__}") from err
        cache = hub_cache_dir()
        return Path(
            hf_hub_download(hub_id, filename, revision=revision, cache_dir=cache, endpoint=endpoint)
        )
    raise _unavailable(name, hub_id, f"the hub repository has none of {list(files)}")


def torch_hub_checkpoints() -> Path:
    """Where torch's hub keeps downloaded weights (``$TORCH_HOME/hub/checkpoints``)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def _torchvision_weights(cfg: Config) -> Weights:
    """torchvision's weights of ``cfg.model`` in torch's hub cache, else downloaded into it
    (torchvision's own ``load_state_dict_from_url`` file name)."""
    import torch.hub

    found = torchvision_weights(cfg.model, cfg.pretrained_tag)
    name = f"{cfg.model}.{found.name}"
    path = torch_hub_checkpoints() / Path(urlparse(found.url).path).name
    source = "cache"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # torch writes a temporary file and renames it: no half-written weights
            torch.hub.download_url_to_file(found.url, str(path), progress=False)
        except Exception as err:  # no network, refused, timeout: say what would fix it
            tv = torchvision_name(cfg.model)
            raise WeightsUnavailable(
                f"pretrained weights {name!r} ({found.url}) are not in torch's hub cache "
                f"{path.parent} and cannot be downloaded ({type(err).__name__}: {err}). Either "
                f'fill the cache on a machine with internet: python -c "import torchvision; '
                f"torchvision.models.get_model('{tv}', weights='{found.name}')\" and copy "
                f"{path.name} into {path.parent} (or point TORCH_HOME at a copy); or pass "
                f"--pretrained-file PATH (a state_dict of torchvision.models.get_model('{tv}'))"
            ) from err
        source = "hub"
    return Weights(source, name, found.url, str(path), _sha256(path))


def resolve_weights(cfg: Config) -> Weights | None:
    """The weights ``cfg`` starts from (None: random init): ``cfg.pretrained_file``, else the
    cached hub file, else a download. Raises :class:`WeightsUnavailable` (a ValueError) at
    once when offline and not cached, FileNotFoundError for a missing ``pretrained_file``."""
    name = weights_name(cfg.model, cfg.pretrained_tag)
    if cfg.pretrained_file is not None:
        path = Path(cfg.pretrained_file).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"pretrained_file {path} does not exist (model {cfg.model!r})")
        return Weights("file", name, None, str(path.resolve()), _sha256(path))
    if not cfg.pretrained or registered_model(cfg.model) is not None:
        return None  # a registered factory loads its own weights
    if torchvision_name(cfg.model) is not None:
        return _torchvision_weights(cfg)
    found = pretrained_cfg(cfg.model, cfg.pretrained_tag)
    if "." not in name and found.tag:
        name = f"{name}.{found.tag}"
    if not found.hf_hub_id:
        raise WeightsUnavailable(
            f"timm keeps the weights of {name!r} outside the Hugging Face hub; pass "
            f"--pretrained-file PATH (a timm state_dict of {name!r})"
        )
    hub_id, _, revision = found.hf_hub_id.partition("@")  # timm's "repo@revision"
    files = (found.hf_hub_filename,) if found.hf_hub_filename else _HUB_FILES
    path = _cached(hub_id, revision or None, files)
    source = "cache"
    if path is None:
        from huggingface_hub import constants

        if constants.HF_HUB_OFFLINE:
            raise _unavailable(name, hub_id, "HF_HUB_OFFLINE=1")
        path, source = _download(name, hub_id, revision or None, files), "hub"
    return Weights(source, name, found.hf_hub_id, str(path), _sha256(path))


Factory = TypeVar("Factory", bound=Callable[..., nn.Module])


@dataclass(frozen=True)
class ModelSpec:
    """A registered backbone: ``build()`` (``build(pretrained=True)`` with ``--pretrained``)
    returns an ``nn.Module`` giving ``(n, width)`` features; ``mean`` and ``std`` (0-1 scale)
    normalise its pictures when pretrained (the competition's statistics otherwise)."""

    build: Callable[..., nn.Module]
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None


#: model name (``cfg.model``) -> a backbone factory of one's own; see :func:`register_model`.
MODELS: Registry[ModelSpec] = Registry("model")


def register_model(
    name: str,
    *,
    mean: tuple[float, float, float] | None = None,
    std: tuple[float, float, float] | None = None,
    overwrite: bool = False,
) -> Callable[[Factory], Factory]:
    """Decorator adding a backbone factory (:class:`ModelSpec`) to :data:`MODELS`, so
    ``--model name`` builds it; with ``--pretrained`` it loads its own weights, and ``mean`` /
    ``std`` must be those weights' normalisation."""
    spec = partial(ModelSpec, mean=_triple(mean), std=_triple(std))
    return _adding(MODELS.register(name, overwrite=overwrite), spec)


def _triple(values: Any) -> tuple[float, float, float] | None:
    return None if values is None else tuple(float(v) for v in values)  # type: ignore[return-value]


class Classifier(nn.Module):
    """``head(backbone(x))``: the backbone gives ``(n, width)`` features, the head its
    outputs (:data:`HEADS`)."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        #: the pretrained weights the backbone started from (None: random initialisation)
        self.weights: Weights | None = None

    def forward(self, x: torch.Tensor) -> Any:
        return self.head(self.backbone(x))


#: Share of the backbone's parameters a weights file must name for it to count as this model's.
_MIN_WEIGHTS_FOUND = 0.9


def _check_weights(backbone: nn.Module, path: Path, model: str) -> None:
    """Refuse a weights file of another architecture: timm loads such a file without error
    (strict=False), leaving a randomly initialised backbone behind a log line."""
    from timm.models import load_state_dict

    keys = set(load_state_dict(str(path)))
    wanted = [name for name, _ in backbone.named_parameters()]
    found = sum(name in keys for name in wanted)
    if found < _MIN_WEIGHTS_FOUND * len(wanted):
        missing = next(name for name in wanted if name not in keys)
        raise ValueError(
            f"pretrained_file {path} does not fit model {model!r}: it holds {found} of the "
            f"backbone's {len(wanted)} weights (no {missing!r}, for one); expected the "
            f"state_dict of timm.create_model('{model}')"
        )


def backbone_width(backbone: nn.Module, image_size: tuple[int, int]) -> int:
    """The feature width of ``backbone``: timm's ``head_hidden_size`` or ``num_features``, else
    measured on one ``image_size`` picture (ValueError when its output is not ``(1, width)``)."""
    width = getattr(backbone, "head_hidden_size", None) or getattr(backbone, "num_features", None)
    if width:
        return int(width)
    was_training = backbone.training
    backbone.eval()
    with torch.no_grad():
        out = backbone(torch.zeros(1, 3, *image_size))
    backbone.train(was_training)
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"the backbone returns {shape} for one {image_size[0]}x{image_size[1]} picture; a "
            "backbone returns pooled features (n, width): end it with a pooling and a flatten "
            "(docs/architecture.md, the backbone contract)"
        )
    return int(out.shape[1])


def _load_file(module: nn.Module, path: str, model: str) -> None:
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        module.load_state_dict(state)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"weights {path} do not fit model {model!r} ({str(err).splitlines()[0]}); "
            f"expected the state_dict of the model {model!r} builds"
        ) from err


def _torchvision(cfg: Config, weights: Weights | None) -> nn.Module:
    """torchvision's model without its classifier: the last ``nn.Linear`` becomes
    ``nn.Identity``."""
    from torchvision import models

    name = torchvision_name(cfg.model)
    model = models.get_model(name)  # random weights; the file is loaded below
    if weights is not None:
        _load_file(model, weights.file, cfg.model)
    linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"torchvision model {name!r} has no nn.Linear classifier to replace")
    parent_name, _, attr = linears[-1].rpartition(".")
    parent = model.get_submodule(parent_name)
    model.num_features = getattr(parent, attr).in_features
    setattr(parent, attr, nn.Identity())
    return model


def _registered(cfg: Config, spec: ModelSpec, weights: Weights | None) -> nn.Module:
    on = "pretrained=True" if cfg.pretrained else "no arguments"
    try:
        # a TypeError may be the missing pretrained argument: told apart below
        with MODELS.calling(cfg.model, on=on, passing=(TypeError,)):
            backbone = spec.build(pretrained=True) if cfg.pretrained else spec.build()
    except TypeError as err:
        if not cfg.pretrained:
            raise
        raise ValueError(
            f"model {cfg.model!r} was registered with a factory that takes no pretrained "
            f"argument ({err}); give it one (def factory(pretrained=False)), or train without "
            "--pretrained"
        ) from err
    if not isinstance(backbone, nn.Module):
        raise ValueError(
            f"the factory of model {cfg.model!r} returned {type(backbone).__name__}; "
            "expected an nn.Module"
        )
    if weights is not None:
        _load_file(backbone, weights.file, cfg.model)
    return backbone


def _timm(cfg: Config, weights: Weights | None) -> nn.Module:
    import timm

    if not timm.is_model(cfg.model):
        raise ValueError(
            f"unknown timm model {cfg.model!r}; list names with timm.list_models('*pattern*')"
        )
    name = cfg.model if weights is None else weights.name
    kwargs: dict[str, Any] = {"num_classes": 0}
    default_cfg = timm.get_pretrained_cfg(cfg.model)
    if default_cfg is not None and default_cfg.fixed_input_size:
        # ViT / Swin build position tables for one size: build them for ours
        kwargs["img_size"] = tuple(cfg.image_size)
    if weights is not None:
        # source="" keeps timm on the resolved file: it neither looks up nor downloads again
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": weights.file, "source": ""})
    try:
        backbone = timm.create_model(name, **kwargs)
    except Exception as err:  # torch / pickle / safetensors errors of a bad weights file
        origin = user_origin(timm.models.model_entrypoint(cfg.model))
        if origin is not None and not isinstance(err, KitError):  # timm.register_model'd
            raise UserCodeError(
                f"model {cfg.model!r} (your code, in {origin}) failed on {kwargs}: "
                f"{type(err).__name__}: {err}; fix it there (--debug shows its traceback)"
            ) from err
        if weights is None:
            raise
        raise ValueError(
            f"cannot load pretrained_file {weights.file} for model {cfg.model!r} "
            f"({type(err).__name__}: {err}); expected a file written by "
            f"torch.save(timm.create_model('{cfg.model}', pretrained=True).state_dict(), ...)"
        ) from err
    if weights is not None and weights.source == "file":
        _check_weights(backbone, Path(weights.file), cfg.model)
    return backbone


def create_model(cfg: Config, weights: Weights | None = None) -> Classifier:
    """The model of ``cfg``: the backbone ``cfg.model`` plus ``cfg.head`` on its features.
    The backbone starts from ``weights``, else those :func:`resolve_weights` finds (recorded
    in ``model.weights``). Fixed-size timm models (ViT, Swin) are built for
    ``cfg.image_size``. Unknown heads or models raise ValueError."""
    head = head_spec(cfg.head)
    spec = registered_model(cfg.model)
    if spec is None and torchvision_name(cfg.model) is not None:
        torchvision_weights(cfg.model, cfg.pretrained_tag)  # an unknown tag fails first
    if weights is None:
        weights = resolve_weights(cfg)
    if spec is not None:
        backbone = _registered(cfg, spec, weights)
    elif torchvision_name(cfg.model) is not None:
        backbone = _torchvision(cfg, weights)
    else:
        backbone = _timm(cfg, weights)
    width = backbone_width(backbone, tuple(cfg.image_size))
    with HEADS.calling(cfg.head, on=f"in_features={width} (model {cfg.model!r})"):
        built = head.build(width)
        if not isinstance(built, nn.Module):
            raise TypeError(f"returned {type(built).__name__}; expected a torch nn.Module")
    model = Classifier(backbone, built)
    model.weights = weights
    return model
