"""What a search found: the best trial, its changes from the recipe, parameter importance, and
Optuna's matplotlib history and importance plots."""

from __future__ import annotations

import os
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from kit.config import Config
from kit.plot import save_png

__all__ = ["best_changes", "importance", "report", "write_plots"]


def best_changes(study: optuna.Study, base: Config) -> dict[str, tuple[Any, Any]]:
    """Field -> (recipe value, best trial's value), for the fields the best trial changed."""
    best = study.best_trial.params
    return {k: (getattr(base, k), v) for k, v in best.items() if getattr(base, k) != v}


def importance(study: optuna.Study) -> dict[str, float] | str:
    """Optuna's parameter importances (its default evaluator), or why there are none yet."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return "needs 2 or more complete trials"
    try:
        return optuna.importance.get_param_importances(study)
    except (ValueError, RuntimeError) as err:  # e.g. every trial had the same parameters
        return str(err)


def report(study: optuna.Study, base: Config, storage: str) -> str:
    """The text ``python -m kit.tune`` prints at the end."""
    states = Counter(t.state.name.lower() for t in study.get_trials(deepcopy=False))
    counts = ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
    lines = [f"study {study.study_name}: {sum(states.values())} trials ({counts}) in {storage}"]
    try:
        best = study.best_trial
    except ValueError:
        return "\n".join([*lines, "no complete trial yet"]) + "\n"
    lines.append(
        f"best: trial {best.number}, val macro F1 {best.value:.4f}, "
        f"run folder {best.user_attrs.get('run_dir', '?')}"
    )
    changes = best_changes(study, base)
    lines.append("changes from the recipe:" if changes else "changes from the recipe: none")
    lines += [f"  {k}: {old!r} -> {new!r}" for k, (old, new) in changes.items()]
    found = importance(study)
    if isinstance(found, str):
        lines.append(f"parameter importance: {found}")
    else:
        lines.append("parameter importance:")
        width = max(map(len, found))
        lines += [f"  {k:<{width}}  {v:.3f}" for k, v in found.items()]
    return "\n".join(lines) + "\n"


def write_plots(study: optuna.Study, folder: str | os.PathLike[str]) -> list[Path]:
    """``history.png`` and (with 2+ complete trials) ``importance.png`` in ``folder``."""
    from optuna.visualization import matplotlib as views

    written = []
    plots = [("history.png", views.plot_optimization_history)]
    if not isinstance(importance(study), str):
        plots.append(("importance.png", views.plot_param_importances))
    for name, draw in plots:
        with warnings.catch_warnings():  # Optuna marks its matplotlib views experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            axes = draw(study)
        figure = axes.figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        written.append(save_png(figure, Path(folder) / name))
        _close(figure)
    return written


def _close(figure: Any) -> None:
    import matplotlib.pyplot as plt  # Optuna draws through pyplot: free its figure

    plt.close(figure)
