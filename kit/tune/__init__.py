"""Hyper-parameter search on Optuna (docs/search.md): ``kit.tune(config, space, n_trials)`` and
``python -m kit.tune RECIPE --trials N --param lr=log:1e-4:1e-2 ...``.

``kit.tune`` is this module, and calling it calls :func:`run` (a submodule and a function of
one name cannot both be ``kit.tune``). What answers without Optuna lives here (a recipe's base
config, the default storage, the search space, ``run``); the study itself is ``kit.tune.study``.

A parameter is a :class:`~kit.config.Config` field holding one number, text or flag, and
``log:LOW:HIGH`` (log-uniform, both > 0), ``LOW:HIGH`` (uniform; integers for an int field) or
``A,B,C`` (choices parsed like the field's flag; one choice alone fixes the field).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import os
import sys
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union, get_args, get_origin, get_type_hints

from kit.config import (
    Config,
    flag_converter,  # the flag parser: a choice reads like its flag
)
from kit.registry import did_you_mean

if TYPE_CHECKING:
    import albumentations as A
    import optuna

__all__ = [
    "Param",
    "best_changes",
    "importance",
    "load_recipe",
    "parse_param",
    "parse_space",
    "report",
    "run",
    "tune",
    "write_plots",
]


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
    # a closed choice (Literal) is searched as text; the Config checks each trial's value
    scalars = [str if get_origin(m) is Literal else m for m in members]
    scalars = [m for m in scalars if m in _SCALARS]
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
        convert = _boolean if kind is bool else flag_converter(kind)
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


#: The default storage: an SQLite file in the runs folder (``<output_dir>/optuna.db``).
DB_NAME = "optuna.db"

#: Names of the study (Optuna), re-exported on first use: ``python -m kit.tune --help`` and
#: ``kit.tune.parse_space`` answer without loading Optuna.
_STUDY = {
    "best_changes",
    "importance",
    "report",
    "write_plots",
    "open_storage",
    "open_study",
    "run_trials",
}


def __getattr__(name: str) -> Any:
    if name in _STUDY:
        from kit.tune import study

        return getattr(study, name)
    raise AttributeError(f"module 'kit.tune' has no attribute {name!r}")


def _check_values(config: Config, params: Sequence[Param]) -> None:
    """Every choice and both ends of every range make a valid config (checked before trial 0)."""
    for p in params:
        for value in p.choices or (p.low, p.high):
            try:
                config.replace(**{p.name: value}).validate()
            except ValueError as err:
                raise ValueError(f"search parameter {p.name}={value!r}: {err}") from None


def load_recipe(path: str | os.PathLike[str]) -> Config:
    """The :class:`Config` returned by the ``config()`` function of the recipe file ``path``."""
    path = Path(path)
    if not path.is_file() or path.suffix != ".py":
        raise FileNotFoundError(f"recipe {path} not found; give a recipe file, e.g. recipes/x.py")
    name = f"kit_recipe_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    # as `python recipes/x.py` does: the recipe's folder is on sys.path (`from baseline import`)
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec.loader.exec_module(module)  # recipes train only under `if __name__ == "__main__"`
    make = getattr(module, "config", None)
    cfg = make() if callable(make) else None
    if not isinstance(cfg, Config):
        raise ValueError(
            f"{path}: a recipe defines config() returning a kit.Config (see recipes/baseline.py)"
        )
    return cfg


def default_storage(output_dir: str | os.PathLike[str]) -> str:
    """``sqlite:///<output_dir>/optuna.db`` (absolute), creating the folder."""
    folder = Path(output_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / DB_NAME}"


def run(
    config: Config,
    space: Mapping[str, Any] | Sequence[str],
    n_trials: int,
    *,
    study: str | None = None,
    storage: str | None = None,
    seed: int | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    train_transform: A.BasicTransform | None = None,
) -> optuna.Study:
    """Search ``space`` around ``config`` until the study has ``n_trials`` trials; the study.

    ``space``: ``{"lr": "log:1e-4:1e-2", "loss": ["cross_entropy", "focal"]}`` or the
    ``--param`` texts (:func:`parse_space`). ``study`` defaults to ``config.name``;
    ``storage`` (an SQLAlchemy URL) to ``sqlite:///<output_dir>/optuna.db``; ``seed`` seeds
    the TPE sampler; ``pruner`` defaults to ``MedianPruner(n_startup_trials=5)``. Calling it
    again with the same study continues it (counting the trials already there).
    """
    if n_trials < 1:
        raise ValueError(f"n_trials is {n_trials}; expected an integer >= 1")
    params = parse_space(space)
    _check_values(config, params)
    if config.folds is not None:
        raise ValueError("kit.tune trains one split per trial; set folds to none (use --fold k)")
    name = study or config.name
    config.replace(name=name).validate()  # a study name makes run folder names: no slashes
    from kit.tune.study import open_storage, open_study, run_trials  # Optuna: a search runs

    url = storage or default_storage(config.output_dir)
    rdb = open_storage(url)
    found = open_study(name, rdb, seed=seed, pruner=pruner)
    return run_trials(found, rdb, config, params, n_trials, train_transform)


class _CallableModule(types.ModuleType):
    # Importing the submodule kit.tune (``python -m kit.tune`` does) sets the attribute
    # ``kit.tune`` to this module, whatever kit exported under that name; so the module itself
    # is the export, and calling it is :func:`run`.
    __call__ = staticmethod(run)


sys.modules[__name__].__class__ = _CallableModule
__signature__ = inspect.signature(run)  # what help() and inspect show for kit.tune(...)
#: ``kit.tune(config, space, n_trials)``: this module, callable as :func:`run`.
tune = sys.modules[__name__]
