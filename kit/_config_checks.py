"""Type, range and registry checks behind ``Config.replace`` and ``Config.validate``.

Registries are looked up lazily (``module:NAME``) so a new head, preset, optimizer, scheduler,
sampler or TTA mode registered in its own module is accepted here without edits.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from kit.labels import HEAD_SIZES, NUM_CLASSES

__all__ = ["check", "coerce", "matches", "type_name"]

#: field -> (module, registry dict) of its valid names.
_CHOICES: dict[str, tuple[str, str]] = {
    "head": ("kit.models", "HEADS"),
    "preset": ("kit.transforms", "PRESETS"),
    "optimizer": ("kit.train.optim", "OPTIMIZERS"),
    "scheduler": ("kit.train.optim", "SCHEDULERS"),
    "sampler": ("kit.train.loaders", "SAMPLERS"),
    "tta": ("kit.inference", "TTA"),
}

_Check = tuple[Callable[[Any], bool], str]
#: field -> (predicate, what is expected); None values skip the check.
_RANGES: dict[str, _Check] = {
    "n_folds": (lambda v: v >= 2, "an integer >= 2"),
    "fold": (lambda v: v >= 0, "an integer >= 0 (and below n_folds)"),
    "val_ratio": (lambda v: 0 < v < 1, "a number strictly between 0 and 1"),
    "age_thresholds": (lambda v: 0 < v[0] < v[1], "two increasing ages, e.g. 30 60"),
    "limit_people": (lambda v: v >= 1, "an integer >= 1"),
    "crop": (lambda v: all(0 < x <= 1 for x in v), "two fractions in (0, 1], e.g. 0.625 0.667"),
    "image_size": (lambda v: all(x >= 8 for x in v), "two sizes >= 8 pixels (height width)"),
    "lr": (lambda v: v > 0, "a number > 0"),
    "weight_decay": (lambda v: v >= 0, "a number >= 0"),
    "momentum": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
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
    "head_losses": (lambda v: set(v) <= set(HEAD_SIZES), f"keys among {list(HEAD_SIZES)}"),
    "head_weights": (lambda v: set(v) <= set(HEAD_SIZES), f"keys among {list(HEAD_SIZES)}"),
    "name": (lambda v: v != "" and "/" not in v and "\\" not in v, "a non-empty name, no slashes"),
}


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
    if not matches(value, hint):
        raise ValueError(
            f"config field {key!r} got {value!r} ({type(value).__name__}); "
            f"expected {type_name(hint)}"
        )
    return value


def _to_float(v: Any) -> Any:
    return float(v) if matches(v, float) else v


def check(cfg: Any) -> None:
    """Raise ValueError naming the first bad field of ``cfg``, its value and what is expected."""
    hints = get_type_hints(type(cfg))
    for f in dataclasses.fields(cfg):
        coerce(f.name, getattr(cfg, f.name), hints[f.name])
    for name, (ok, expected) in _RANGES.items():
        value = getattr(cfg, name)
        if value is not None and not ok(value):
            raise ValueError(f"config field {name!r} is {value!r}; expected {expected}")
    if cfg.fold is not None and cfg.fold >= cfg.n_folds:
        raise ValueError(f"config field 'fold' is {cfg.fold}; expected 0..{cfg.n_folds - 1}")
    if cfg.folds is not None:
        from kit.train.kfold import check_folds  # late: kit.train imports this module

        check_folds(cfg)
    for name, (module, registry) in _CHOICES.items():
        valid = getattr(importlib.import_module(module), registry)
        _check_choice(name, getattr(cfg, name), list(valid))
    _check_model(cfg.model)
    _check_losses(cfg)
    _check_scheduler_kwargs(cfg.scheduler, cfg.scheduler_kwargs)
    if cfg.pretrained_file is not None and not Path(cfg.pretrained_file).is_file():
        raise ValueError(f"config field 'pretrained_file': {cfg.pretrained_file} does not exist")
    if cfg.pretrained and cfg.pretrained_file is None:
        from kit.models import NO_WEIGHTS_FILE

        raise ValueError(NO_WEIGHTS_FILE.format(model=cfg.model))
    _check_device(cfg.device)
    if cfg.track is not None:
        importlib.import_module("kit.tracking").check_track(cfg.track)


def _check_device(name: str) -> None:
    import torch

    if name == "auto":
        return
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"config field 'device' is {name!r}: {err}; e.g. auto, cpu, cuda") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"config field 'device' is {name!r} but torch sees no CUDA GPU; use auto")


def _check_choice(name: str, value: str, valid: list[str]) -> None:
    if value not in valid:
        close = difflib.get_close_matches(value, valid, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"config field {name!r} is {value!r}{hint}; valid choices: {valid}")


def _check_model(name: str) -> None:
    import timm

    if not timm.is_model(name):
        close = difflib.get_close_matches(name, timm.list_models(), n=3, cutoff=0.6)
        hint = f" Close names: {close}." if close else ""
        raise ValueError(
            f"config field 'model' is {name!r}, which is not a timm model.{hint} "
            f"List names with: python -c \"import timm; print(timm.list_models('*{name[:6]}*'))\""
        )


#: output kind -> the config fields that choose its loss (named in errors).
_LOSS_FIELDS: dict[str, str] = {"joint": "loss", "heads": "head_losses / loss"}


def _check_losses(cfg: Any) -> None:
    import numpy as np

    from kit.heads import head_spec
    from kit.train.steps import build_criterion

    try:  # one image of every class stands in for the training labels
        build_criterion(cfg, labels=np.arange(NUM_CLASSES))
    except (ValueError, KeyError, TypeError) as err:
        where = _LOSS_FIELDS.get(head_spec(cfg.head).kind, "loss")
        raise ValueError(f"config field {where!r}: {err}") from err


def _check_scheduler_kwargs(scheduler: str, kwargs: dict[str, float]) -> None:
    from kit.train.optim import SCHEDULER_KWARGS

    allowed = SCHEDULER_KWARGS.get(scheduler, ())
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ValueError(
            f"config field 'scheduler_kwargs' has {unknown} for scheduler {scheduler!r}; "
            f"it accepts {list(allowed) or 'no arguments'}"
        )
