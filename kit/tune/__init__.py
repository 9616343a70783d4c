"""Hyper-parameter search on Optuna (docs/search.md): ``kit.tune(config, space, n_trials)`` and
``python -m kit.tune RECIPE --trials N --param lr=log:1e-4:1e-2 ...``.

``kit.tune`` is this module, and calling it calls :func:`run` (a submodule and a function of
one name cannot both be ``kit.tune``).

TPE sampling, a median pruner fed each epoch's val macro F1, one ordinary run folder per trial
(tagged ``study`` and ``trial``), and the study in a database (SQLite beside the runs by
default) that several workers share and that a restarted search continues.
"""

from __future__ import annotations

import inspect
import sys
import types
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kit.config import Config
from kit.tune.recipe import load_recipe
from kit.tune.report import best_changes, importance, report, write_plots
from kit.tune.space import Param, parse_param, parse_space
from kit.tune.study import default_storage, open_storage, open_study, run_trials

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


def _check_values(config: Config, params: Sequence[Param]) -> None:
    """Every choice and both ends of every range make a valid config (checked before trial 0)."""
    for p in params:
        for value in p.choices or (p.low, p.high):
            try:
                config.replace(**{p.name: value}).validate()
            except ValueError as err:
                raise ValueError(f"search parameter {p.name}={value!r}: {err}") from None


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
