"""Hyper-parameter search on Optuna (docs/search.md): ``kit.tune(config, space, n_trials)`` and
``python -m kit.tune RECIPE --trials N --param lr=log:1e-4:1e-2 ...``.

``kit.tune`` is this module, and calling it calls :func:`run` (a submodule and a function of
one name cannot both be ``kit.tune``).

TPE sampling, a median pruner fed each epoch's val macro F1, one ordinary run folder per trial
(tagged ``study`` and ``trial``), and the study in a database (SQLite beside the runs by
default) that several workers share and that a restarted search continues.

This module holds what answers without Optuna (a recipe's base config, the default storage,
``run``); the search space is ``kit.tune.space``, the study (Optuna) ``kit.tune.study``, loaded
when a search runs or its report is asked for.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kit.config import Config
from kit.tune.space import Param, parse_param, parse_space

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
    ``--param`` texts (``kit.tune.space``). ``study`` defaults to ``config.name``;
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
