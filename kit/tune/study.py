"""A kit search on Optuna (docs/search.md): the study in an RDB storage that several workers
share, one ordinary run folder per trial (tagged ``study`` / ``trial``), pruning on each epoch's
val macro F1 (the hook raises :class:`~kit.tracking.Pruned`), and what the search found.

A worker stops once the study has ``n_trials`` finished or running trials. A trial whose
process died is failed and re-queued with its parameters once: at once when it ran on this
machine (its pid is gone), else by Optuna's heartbeat after :data:`GRACE_SECONDS`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
import sqlalchemy
from filelock import FileLock
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from kit.config import Config
from kit.errors import ConfigError
from kit.io import output_error
from kit.plot import save_png
from kit.runfolder import writer_alive
from kit.tracking import Pruned, Tracker, TrackerStart
from kit.tune import Param

if TYPE_CHECKING:
    import albumentations as A

__all__ = [
    "GRACE_SECONDS",
    "best_changes",
    "counted",
    "importance",
    "open_storage",
    "open_study",
    "report",
    "run_trials",
    "write_plots",
]

_log = logging.getLogger("kit")

#: A trial whose heartbeat is this old (its machine died, say) is failed and re-queued.
HEARTBEAT_SECONDS, GRACE_SECONDS = 30, 120


@contextlib.contextmanager
def _experimental_ok() -> Iterator[None]:
    """Optuna marks heartbeats and their retry callback experimental: kit uses them knowingly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        yield


with _experimental_ok():
    #: Re-queues a failed trial's parameters once (the copy records the original's number).
    _RETRY = RetryHeartbeatStaleTrialCallback(max_retry=1)


#: What a bad ``--storage`` message suggests.
_STORAGE_FIX = (
    "expected an SQLAlchemy database URL such as sqlite:///runs/optuna.db or "
    "postgresql://user:password@host/db (with its driver installed)"
)


def open_storage(url: str) -> RDBStorage:
    """Optuna's database storage at ``url`` (any SQLAlchemy URL), with trial heartbeats. A URL
    SQLAlchemy cannot parse, a scheme it has no dialect or driver for, and a database it cannot
    reach are a :class:`~kit.errors.ConfigError` naming ``--storage``."""
    try:
        database = _sqlite_file(url)
    except sqlalchemy.exc.ArgumentError:
        raise ConfigError(f"--storage {url!r} is not a database URL; {_STORAGE_FIX}") from None
    if database:
        # the folder of a new SQLite file is made, as the default storage's is; one that
        # cannot be (a file in the way, no permission) is the flag's fault, not a traceback's
        folder = Path(database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            why = output_error(folder, err).reason
            raise ConfigError(
                f"--storage {url!r}: cannot create the folder {folder} of the SQLite file "
                f"({why}); pass --storage sqlite:///PATH/optuna.db with PATH a folder you can "
                "write, or leave --storage out (the study goes to the runs folder)"
            ) from err
    try:
        return _open_storage(url, database)
    except (sqlalchemy.exc.NoSuchModuleError, ImportError) as err:
        scheme = url.partition(":")[0]
        raise ConfigError(
            f"--storage {url!r}: no database driver for {scheme!r} ({err}); {_STORAGE_FIX}"
        ) from err
    except sqlalchemy.exc.OperationalError as err:
        raise ConfigError(
            f"--storage {url!r}: cannot open the database ({err.orig}); check the host, port, "
            "user and password, or the folder of an SQLite file"
        ) from err


def _sqlite_file(url: str) -> str | None:
    """The file of an SQLite ``url`` (None for another database or SQLite in memory)."""
    database = sqlalchemy.engine.make_url(url).database
    return database if url.startswith("sqlite") and database != ":memory:" else None


def _open_storage(url: str, database: str | None) -> RDBStorage:
    # SQLite: wait for a teammate's write lock instead of failing ("database is locked")
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}

    def storage() -> RDBStorage:
        with _experimental_ok():
            return RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=HEARTBEAT_SECONDS,
                grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=_RETRY,
            )

    if database:
        # Two workers creating a new SQLite file at once race on its tables ("table studies
        # already exists"); an OS lock beside the file makes the schema creation one at a time.
        with FileLock(f"{database}.lock", timeout=120):
            return storage()
    for attempt in range(2):
        try:
            return storage()
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            # two workers creating a new database at once: the other one's tables now exist
            time.sleep(1 + attempt)
    return storage()


def open_study(
    name: str,
    storage: RDBStorage,
    seed: int | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """The study ``name`` in ``storage``, created if new (TPE sampler, median pruner)."""
    return optuna.create_study(
        study_name=name,
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=seed),
        pruner=pruner if pruner is not None else optuna.pruners.MedianPruner(n_startup_trials=5),
        load_if_exists=True,
    )


def _requeue_dead_local_trials(study: optuna.Study, storage: RDBStorage) -> None:
    """Fail the running trials whose process on this machine is gone, and re-queue each once
    with the same parameters, as Optuna's heartbeat does for a silent one."""
    study_id = storage.get_study_id_from_name(study.study_name)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = {"pid": trial.user_attrs.get("pid"), "host": trial.user_attrs.get("host")}
        if writer_alive(owner) is not False:
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        if storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            _log.warning("trial %d: its process ended mid-trial; marked failed", trial.number)
            with _experimental_ok():
                _RETRY(study, storage.get_trial(trial_id))


def _prune_hook(trial: optuna.Trial) -> Any:
    def open_hook(start: TrackerStart) -> Tracker:
        trial.set_user_attr("run_dir", str(start.run_dir))

        class Report(Tracker):
            def log_epoch(self, epoch: int, metrics: Any) -> None:
                trial.report(metrics["val/macro_f1"], epoch)
                if trial.should_prune():
                    raise Pruned(f"trial {trial.number}: below the median at epoch {epoch}")

        return Report()

    open_hook.__name__ = "optuna"
    return open_hook


def _objective(base: Config, params: Sequence[Param], study: str, transform: Any) -> Any:
    from kit.train import fit  # torch: when trials run, not for `python -m kit.tune --help`

    def objective(trial: optuna.Trial) -> float:
        trial.set_user_attr("pid", os.getpid())
        trial.set_user_attr("host", socket.gethostname())
        values = {p.name: p.suggest(trial) for p in params}
        cfg = base.replace(
            **values, study=study, trial=trial.number, name=f"{base.name}-trial{trial.number}"
        )
        try:
            run = fit(cfg, transform, hooks=[_prune_hook(trial)])
        except Pruned as stop:
            raise optuna.TrialPruned(str(stop)) from None
        return float(run.summary["val_macro_f1"])

    return objective


def counted(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that count towards ``n_trials``: started ones, except those whose re-queued
    copy replaced them."""
    trials = study.get_trials(deepcopy=False)
    with _experimental_ok():
        replaced = {RetryHeartbeatStaleTrialCallback.retried_trial_number(t) for t in trials}
    return [t for t in trials if t.state != TrialState.WAITING and t.number not in replaced]


def run_trials(
    study: optuna.Study,
    storage: RDBStorage,
    base: Config,
    params: Sequence[Param],
    n_trials: int,
    train_transform: A.BasicTransform | None = None,
) -> optuna.Study:
    """Run trials of ``params`` on ``base`` until ``study`` has ``n_trials`` (all workers)."""
    objective = _objective(base, params, study.study_name, train_transform)
    while True:
        _requeue_dead_local_trials(study, storage)
        queued = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if not queued and len(counted(study)) >= n_trials:
            return study
        # one trial per call: the count above is rechecked between trials, so two workers
        # stop at n_trials together (at most one extra trial each when they race). A trial
        # that raises is recorded failed and the search goes on (Optuna logs why).
        study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)


# what a search found
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
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as views

    written = []
    plots = [("history.png", views.plot_optimization_history)]
    if not isinstance(importance(study), str):
        plots.append(("importance.png", views.plot_param_importances))
    for name, draw in plots:
        with _experimental_ok():  # as are its matplotlib views
            figure = draw(study).figure
        figure.set_size_inches(8, 5)
        figure.tight_layout()
        written.append(save_png(figure, Path(folder) / name))
        plt.close(figure)  # Optuna draws through pyplot: free its figure
    return written
