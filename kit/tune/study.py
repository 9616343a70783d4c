"""A kit search on Optuna: the study in an RDB storage, one run folder per trial, pruning.

Each trial is an ordinary ``fit`` of the recipe's config with the trial's parameters, tagged
``study`` / ``trial`` in its config.json. Its val macro F1 is reported to Optuna after every
epoch; a :class:`~kit.tracking.Pruned` raised by the hook stops it (run folder ``pruned``).

Several workers (processes, machines) share one study through its storage. A worker stops
once the study has ``n_trials`` finished or running trials. A trial whose process died is
marked failed and re-queued with the same parameters once: at once when it ran on this
machine (its pid is gone), else by Optuna's heartbeat after :data:`GRACE_SECONDS`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import warnings
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
from kit.runfolder import writer_alive
from kit.tracking import Pruned, Tracker, TrackerStart
from kit.tune.space import Param

if TYPE_CHECKING:
    import albumentations as A

__all__ = [
    "DB_NAME",
    "GRACE_SECONDS",
    "counted",
    "default_storage",
    "open_storage",
    "open_study",
    "run_trials",
]

_log = logging.getLogger("kit")

#: The default storage: an SQLite file in the runs folder (``<output_dir>/optuna.db``).
DB_NAME = "optuna.db"
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


def default_storage(output_dir: str | os.PathLike[str]) -> str:
    """``sqlite:///<output_dir>/optuna.db`` (absolute), creating the folder."""
    folder = Path(output_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / DB_NAME}"


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
        sqlalchemy.engine.make_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise ConfigError(f"--storage {url!r} is not a database URL; {_STORAGE_FIX}") from None
    database = sqlalchemy.engine.make_url(url).database
    if url.startswith("sqlite") and database and database != ":memory:":
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
        return _open_storage(url)
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


def _open_storage(url: str) -> RDBStorage:
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

    database = sqlalchemy.engine.make_url(url).database
    if url.startswith("sqlite") and database and database != ":memory:":
        # Two workers creating a new SQLite file at once race on its tables ("table studies
        # already exists"); an OS lock beside the file makes the schema creation one at a time.
        with FileLock(f"{database}.lock", timeout=120):
            return storage()
    for attempt in range(3):
        try:
            return storage()
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            # two workers creating a new database at once: the other one's tables now exist
            if attempt == 2:
                raise
            time.sleep(1 + attempt)
    raise AssertionError("unreachable")


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
