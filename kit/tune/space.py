"""The search space: ``--param lr=log:1e-4:1e-2``, ``--param loss=cross_entropy,focal``.

A parameter is a :class:`~kit.config.Config` field and a range or a list of choices:

- ``NAME=log:LOW:HIGH``: log-uniform between LOW and HIGH (both > 0);
- ``NAME=LOW:HIGH``: uniform;
- ``NAME=A,B,C``: one of the choices (one choice alone fixes the field).

Ranges are integers for an int field, floats otherwise; choices are parsed like the field's
command-line flag. Only fields holding one number, text or flag can be searched.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from kit._config_cli import _converter  # the flag parser: a choice reads like its flag
from kit.config import Config
from kit.registry import did_you_mean

__all__ = ["Param", "parse_param", "parse_space"]

_SCALARS = (int, float, str, bool)


@dataclass(frozen=True)
class Param:
    """One searched Config field: a ``low``..``high`` range (``log`` scale) or ``choices``."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """This parameter's value for the Optuna ``trial``."""
        if self.choices:
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)


def _scalar_type(name: str) -> Any:
    """The one scalar type of field ``name`` (``str | None`` -> str); ValueError otherwise."""
    hints = get_type_hints(Config)
    if name not in hints:
        fields = [f.name for f in dataclasses.fields(Config)]
        raise ValueError(f"unknown config field {name!r}{did_you_mean(name, fields)}")
    hint = hints[name]
    members = [hint]
    if get_origin(hint) in (Union, types.UnionType):
        members = [a for a in get_args(hint) if a is not type(None)]
    members = [str if get_origin(m) is Literal else m for m in members]  # a closed choice
    scalars = [m for m in members if m in _SCALARS]
    if not scalars:
        raise ValueError(f"config field {name!r} holds more than one value; it cannot be searched")
    return scalars[0]


_BOOLS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def _boolean(text: str) -> bool:
    if text.lower() not in _BOOLS:
        raise ValueError(f"expected true or false, got {text!r}")
    return _BOOLS[text.lower()]


def _number(text: str, integer: bool, where: str) -> float:
    try:
        return int(text) if integer else float(text)
    except ValueError:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{where}: {text!r} is not {kind}") from None


def parse_param(name: str, spec: str | Sequence[Any]) -> Param:
    """The :class:`Param` of field ``name`` from ``spec`` (text as above, or a list of choices)."""
    kind = _scalar_type(name)
    where = f"--param {name}={spec}" if isinstance(spec, str) else f"param {name}"
    if not isinstance(spec, str):
        choices = tuple(spec)
        if not choices:
            raise ValueError(f"{where}: no choices")
        return Param(name, choices=choices)
    parts = spec.split(":")
    if len(parts) == 1 or kind in (str, bool):
        convert = _boolean if kind is bool else _converter(kind)
        try:
            choices = tuple(convert(t.strip()) for t in spec.split(",") if t.strip())
        except Exception as err:  # argparse.ArgumentTypeError names the expected type
            raise ValueError(f"{where}: {err}") from None
        if not choices:
            raise ValueError(f"{where}: no choices")
        return Param(name, choices=choices)
    log = parts[0] == "log"
    bounds = parts[1:] if log else parts
    if len(bounds) != 2:
        raise ValueError(f"{where}: expected log:LOW:HIGH, LOW:HIGH or A,B,...")
    integer = kind is int
    low, high = (_number(b, integer, where) for b in bounds)
    if not low < high:
        raise ValueError(f"{where}: LOW must be below HIGH")
    if log and low <= 0:
        raise ValueError(f"{where}: a log range needs LOW > 0")
    return Param(name, low, high, log=log, integer=integer)


def parse_space(space: Mapping[str, Any] | Sequence[str]) -> list[Param]:
    """Params from ``{"lr": "log:1e-4:1e-2", "loss": ["focal", "f1"]}`` or ``["lr=...", ...]``."""
    if isinstance(space, Mapping):
        items = list(space.items())
    else:
        items = []
        for text in space:
            name, sep, spec = str(text).partition("=")
            if not sep or not name.strip():
                raise ValueError(f"--param {text}: expected NAME=SPEC, e.g. lr=log:1e-4:1e-2")
            items.append((name.strip(), spec.strip()))
    params = [p if isinstance(p, Param) else parse_param(n, p) for n, p in items]
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise ValueError(f"a parameter is given twice: {names}")
    if not params:
        raise ValueError("nothing to search: give at least one --param NAME=SPEC")
    return params
