"""Type, range and registry checks behind ``Config.replace`` and ``Config.validate``.

A field whose metadata names a ``registry`` kind is checked by that registry in
:data:`kit.registry.REGISTRIES`, so this module imports no training code: a registry not
imported yet is skipped by ``validate`` and required by :func:`check_registries`.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from kit.errors import ConfigError
from kit.labels import TASK_SIZES
from kit.registry import REGISTRIES, did_you_mean

__all__ = [
    "TORCHVISION",
    "check",
    "check_model_name",
    "check_registries",
    "coerce",
    "matches",
    "parse_age_ranges",
    "parse_folds",
    "pretrained_cfg",
    "registered_model",
    "torchvision_name",
    "torchvision_weights",
    "type_name",
    "weights_name",
]


def type_name(hint: Any) -> str:
    """Readable name of a type hint, e.g. ``tuple[int, int] or None``."""
    if get_origin(hint) in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in get_args(hint))
    if hint is type(None):
        return "None"
    if get_origin(hint) is Literal:
        return " | ".join(map(repr, get_args(hint)))
    if get_origin(hint) is not None:
        return f"{get_origin(hint).__name__}[{', '.join(type_name(a) for a in get_args(hint))}]"
    return getattr(hint, "__name__", str(hint))


def matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the type ``hint`` (a bool is no int here; an int is a float)."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is Literal:
        return any(type(value) is type(a) and value == a for a in args)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple:
        return (
            isinstance(value, tuple)
            and len(value) == len(args)
            and all(matches(v, a) for v, a in zip(value, args, strict=True))
        )
    if origin is list:
        return isinstance(value, list) and all(matches(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            matches(k, args[0]) and matches(v, args[1]) for k, v in value.items()
        )
    return isinstance(value, hint)


def coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` fitted to ``hint`` (JSON lists -> tuples, ints -> floats) or ValueError."""
    tuple_hint = next((a for a in (hint, *get_args(hint)) if get_origin(a) is tuple), None)
    if tuple_hint is not None and isinstance(value, (list, tuple)):
        elems = get_args(tuple_hint)
        if len(value) == len(elems):
            value = tuple(
                _to_float(v) if a is float else v for v, a in zip(value, elems, strict=True)
            )
    if hint is float:
        value = _to_float(value)
    if get_origin(hint) is dict and get_args(hint)[1] is float and isinstance(value, dict):
        value = {k: _to_float(v) for k, v in value.items()}
    if get_origin(hint) is Literal and not matches(value, hint):
        valid = sorted(get_args(hint))
        close = did_you_mean(str(value), valid) if isinstance(value, str) else ""
        raise ConfigError(f"config field {key!r} is {value!r}{close}; valid: {valid}")
    if not matches(value, hint):
        raise ConfigError(
            f"config field {key!r} got {value!r} ({type(value).__name__}); "
            f"expected {type_name(hint)}"
        )
    return value


def _to_float(v: Any) -> Any:
    return float(v) if matches(v, float) else v


_Check = tuple[Callable[[Any], bool], str]
#: field -> (predicate, what is expected); None values skip the check.
_RANGES: dict[str, _Check] = {
    "n_folds": (lambda v: v >= 2, "an integer >= 2"),
    "fold": (lambda v: v >= 0, "an integer >= 0 (and below n_folds)"),
    "val_ratio": (lambda v: 0 < v < 1, "a number strictly between 0 and 1"),
    "age_thresholds": (lambda v: 0 < v[0] < v[1], "two increasing ages, e.g. 30 60"),
    "limit_people": (lambda v: v >= 1, "an integer >= 1"),
    "pseudo_threshold": (lambda v: 0 <= v < 1, "a probability in [0, 1), e.g. 0.9"),
    "crop": (lambda v: all(0 < x <= 1 for x in v), "two fractions in (0, 1], e.g. 0.625 0.667"),
    "image_size": (lambda v: all(x >= 8 for x in v), "two sizes >= 8 pixels (height width)"),
    "lr": (lambda v: v > 0, "a number > 0"),
    "weight_decay": (lambda v: v >= 0, "a number >= 0"),
    "momentum": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "layer_decay": (lambda v: 0 < v <= 1, "a factor in (0, 1], e.g. 0.8, or none"),
    "backbone_lr_scale": (lambda v: v > 0, "a number > 0, e.g. 0.1 (1 = the head's rate)"),
    "freeze_epochs": (lambda v: v >= 0, "an integer >= 0 (0 = off)"),
    "warmup_epochs": (lambda v: v >= 0, "a number >= 0"),
    "epochs": (lambda v: v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "eval_batch_size": (lambda v: v >= 1, "an integer >= 1"),
    "grad_accum": (lambda v: v >= 1, "an integer >= 1"),
    "grad_clip": (lambda v: v >= 0, "a number >= 0 (0 = off)"),
    "early_stopping": (lambda v: v >= 0, "an integer >= 0 (0 = off)"),
    "workers": (
        lambda v: v == "auto" or (isinstance(v, int) and v >= 0),
        "an integer >= 0 or auto",
    ),
    "max_steps_per_epoch": (lambda v: v >= 1, "an integer >= 1"),
    "head_losses": (lambda v: set(v) <= set(TASK_SIZES), f"keys among {list(TASK_SIZES)}"),
    "head_weights": (lambda v: set(v) <= set(TASK_SIZES), f"keys among {list(TASK_SIZES)}"),
    "face_margin": (lambda v: 0 <= v <= 5, "a share in [0, 5], e.g. 0.4"),
    "crop_mix": (lambda v: 0 <= v <= 1, "a share in [0, 1] (0 = off), e.g. 0.5"),
    "name": (lambda v: v != "" and "/" not in v and "\\" not in v, "a non-empty name, no slashes"),
    "mix_alpha": (lambda v: v > 0, "a number > 0"),
    "mix_lam": (lambda v: 0 < v[0] <= v[1] < 1, "two shares 0 < low <= high < 1, e.g. 0.4 0.6"),
    "mix_prob": (lambda v: 0 <= v <= 1, "a probability in [0, 1]"),
    "mix_off_epochs": (lambda v: v >= 0, "an integer >= 0 (0 = mix every epoch)"),
    "ema_decay": (lambda v: 0 < v < 1, "a number strictly between 0 and 1, e.g. 0.999"),
    "refit_epochs": (lambda v: v >= 1, "an integer >= 1"),
}


def check(cfg: Any) -> None:
    """Raise ValueError naming the first bad field of ``cfg``, its value and what is expected
    (registry names: those of the registries imported so far, :func:`check_registries`)."""
    hints = get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        coerce(f.name, getattr(cfg, f.name), hints[f.name])
    for name, (ok, expected) in _RANGES.items():
        value = getattr(cfg, name)
        if value is not None and not ok(value):
            raise ConfigError(f"config field {name!r} is {value!r}; expected {expected}")
    if cfg.fold is not None and cfg.fold >= cfg.n_folds:
        raise ConfigError(f"config field 'fold' is {cfg.fold}; expected 0..{cfg.n_folds - 1}")
    if cfg.folds is not None:
        parse_folds(cfg.folds, cfg.n_folds)
    if cfg.folds is not None and cfg.fold is not None:
        raise ConfigError(
            f"config fields 'fold' ({cfg.fold}) and 'folds' ({cfg.folds!r}) are both set; "
            "expected one: fold k trains one run, folds trains a K-fold (use --fold none)"
        )
    if cfg.freeze_epochs >= cfg.epochs:
        raise ValueError(
            f"config field 'freeze_epochs' is {cfg.freeze_epochs} with epochs {cfg.epochs}: the "
            f"backbone would never train; use fewer head-only epochs than epochs, e.g. "
            f"--freeze-epochs {max(0, min(1, cfg.epochs - 1))}"
        )
    if cfg.drop_ages is not None:
        parse_age_ranges(cfg.drop_ages)
    if cfg.refit != "none" and cfg.folds is not None:
        raise ConfigError(
            f"config field 'refit' is {cfg.refit!r} with folds {cfg.folds!r}: a K-fold's test "
            "probabilities already average models that saw every person; use --refit none, or "
            "refit a single run (--folds none)"
        )
    if cfg.crop_mix > 0 and cfg.crop_mode not in ("center", "face"):
        raise ConfigError(
            f"config field 'crop_mix' is {cfg.crop_mix!r} with crop_mode {cfg.crop_mode!r}: it "
            "mixes the centre and the face crop, so the run's own crop must be one of them; use "
            "--crop-mode center or face, or --crop-mix 0"
        )
    check_registries(cfg, require=False)
    check_model_name(cfg.model)
    if cfg.pretrained_file is not None and not Path(cfg.pretrained_file).is_file():
        raise ConfigError(f"config field 'pretrained_file': {cfg.pretrained_file} does not exist")
    if cfg.pretrained_tag is not None and torchvision_name(cfg.model) is not None:
        torchvision_weights(cfg.model, cfg.pretrained_tag)  # an unknown tag names the valid ones
    elif cfg.pretrained_tag is not None and registered_model(cfg.model) is not None:
        raise ConfigError(
            f"config field 'pretrained_tag' is {cfg.pretrained_tag!r}, but model {cfg.model!r} "
            "is registered with kit.register_model: its factory picks its own weights; leave "
            "--pretrained-tag out"
        )
    elif cfg.pretrained_tag is not None:
        pretrained_cfg(cfg.model, cfg.pretrained_tag)  # an unknown tag names the valid ones
    _check_device(cfg.device)


def check_registries(cfg: Any, require: bool = True) -> None:
    """Check every field with ``registry`` metadata against the registry of that kind; with
    ``require``, a kind whose registry is not loaded yet is an error, else left unchecked."""
    for f in dataclasses.fields(cfg):
        kind = f.metadata.get("registry")
        if kind is None:
            continue
        registry = REGISTRIES.get(kind)
        if registry is not None:
            registry.check(getattr(cfg, f.name), f.name, cfg)
        elif require:
            raise ConfigError(
                f"config field {f.name!r} names a {kind}, but no {kind} registry is loaded"
                f"{did_you_mean(kind, REGISTRIES)} (loaded: {sorted(REGISTRIES)}); import the "
                f"module that registers them first (importing kit.train loads every registry)"
            )


def parse_folds(spec: str, n_folds: int) -> list[int]:
    """The sorted fold indices of ``spec``: ``"all"`` or a comma list such as ``"0,2"``."""
    expected = f"expected all or a comma list of fold indices in 0..{n_folds - 1}, e.g. 0,2"
    text = spec.strip().lower()
    if text == "all":
        return list(range(n_folds))
    parts = [p.strip() for p in text.split(",")]
    bad = next((p for p in parts if not (p.isascii() and p.isdigit())), None)
    if bad is not None:
        raise ConfigError(
            f"config field 'folds' is {spec!r}: {bad!r} is not a fold index; {expected}"
        )
    folds = [int(p) for p in parts]
    if beyond := [k for k in folds if k >= n_folds]:
        raise ConfigError(
            f"config field 'folds' is {spec!r}: there is no fold {beyond[0]} with "
            f"n_folds = {n_folds}; {expected}"
        )
    if twice := sorted({k for k in folds if folds.count(k) > 1}):
        raise ConfigError(f"config field 'folds' is {spec!r}: fold {twice[0]} is listed twice")
    return sorted(folds)


def parse_age_ranges(spec: str) -> list[tuple[int, int]]:
    """The inclusive ``(low, high)`` age ranges of ``spec``, e.g. ``"27-29,57-59"``."""
    expected = "expected inclusive ranges of whole years joined by commas, e.g. 27-29,57-59"
    ranges = []
    for part in spec.split(","):
        low, dash, high = part.strip().partition("-")
        ok = dash and low.strip().isdigit() and high.strip().isdigit()
        if not ok or not 0 <= int(low) <= int(high) <= 120:
            raise ConfigError(
                f"config field 'drop_ages' is {spec!r}: {part.strip()!r} is no age range "
                f"low-high in 0..120; {expected}"
            )
        ranges.append((int(low), int(high)))
    return ranges


def _check_device(name: str) -> None:
    if name == "auto":
        return
    import torch  # only for a named device: checking a config must not load torch otherwise

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as err:
        raise ConfigError(
            f"config field 'device' is {name!r}: {err}; e.g. auto, cpu, cuda"
        ) from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"config field 'device' is {name!r} but torch sees no CUDA GPU; use auto")


#: ``--model torchvision/<name>``: a model of ``torchvision.models.list_models()``, with
#: torchvision's own weights (``--pretrained``) and their normalisation.
TORCHVISION = "torchvision/"


def torchvision_name(model: str) -> str | None:
    """The torchvision name of a ``torchvision/<name>`` model, else None."""
    return model[len(TORCHVISION) :] if model.startswith(TORCHVISION) else None


def registered_model(model: str) -> Any:
    """The entry ``kit.register_model`` made for ``model``, or None (timm or torchvision)."""
    registry = REGISTRIES.get("model")
    return registry.get(model) if registry is not None and model in registry else None


def check_model_name(name: str) -> None:
    """ValueError unless ``name`` is a timm model, ``torchvision/<name>`` or registered with
    ``kit.register_model``, naming the close ones."""
    tv = torchvision_name(name)
    if tv is not None:
        from torchvision import models  # slow to import: only for a torchvision model

        valid = models.list_models(module=models)  # the classification models
        if tv not in valid:
            close = did_you_mean(name, [TORCHVISION + v for v in valid], n=3)
            raise ValueError(
                f"config field 'model' is {name!r}, which is not a torchvision classification "
                f'model{close}. List names with: python -c "import torchvision; '
                f'print(torchvision.models.list_models(torchvision.models))"'
            )
        return
    if registered_model(name) is not None:
        return
    import timm  # slow to import: only when a config is checked

    if not timm.is_model(name):
        registry = REGISTRIES.get("model")
        close = did_you_mean(name, [*timm.list_models(), *(registry or ())], n=3)
        raise ConfigError(
            f"config field 'model' is {name!r}, which is not a timm model{close}, nor "
            f"torchvision/<name>, nor one registered with kit.register_model. List names "
            f"with: python -c \"import timm; print(timm.list_models('*{name[:6]}*'))\""
        )


def torchvision_weights(model: str, tag: str | None = None) -> Any:
    """torchvision's weights of ``torchvision/<name>`` ``model``: the member ``tag`` of its
    weights enum (e.g. ``IMAGENET1K_V2``), by default ``DEFAULT``; ValueError listing them."""
    from torchvision.models import get_model_weights

    name = torchvision_name(model)
    enum = get_model_weights(name)
    try:
        return enum[tag or "DEFAULT"]
    except KeyError:
        raise ValueError(
            f"config field 'pretrained_tag': torchvision has no weights {tag!r} for {name!r}; "
            f"its weights: {[w.name for w in enum]}"
        ) from None


def weights_name(model: str, tag: str | None = None) -> str:
    """The timm name of ``model``'s weight variant ``tag`` (``model`` itself when no tag)."""
    return f"{model.partition('.')[0]}.{tag}" if tag else model


def pretrained_cfg(model: str, tag: str | None = None) -> Any:
    """timm's pretrained config of ``model`` with weight variant ``tag`` (mean, std,
    interpolation, hub id); ValueError listing the valid tags for an unknown one. (Here, not in
    :mod:`kit.models`, because checking a config asks it too.)"""
    import timm  # slow to import: only when a config is checked

    name = weights_name(model, tag)
    try:
        found = timm.get_pretrained_cfg(name)
    except RuntimeError:  # timm's "Invalid pretrained tag"
        found = None
    if found is None:
        base = name.partition(".")[0]
        tags = [n.partition(".")[2] for n in timm.list_pretrained(f"{base}.*")]
        raise ConfigError(
            f"config field 'pretrained_tag': timm has no weights {name!r}; "
            f"tags of {base!r}: {tags or 'none (no pretrained weights)'}"
        )
    return found
