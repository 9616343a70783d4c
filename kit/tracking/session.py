"""The trackers of one run, opened together, each failure contained (warned once, then dropped).

The epoch loop talks to one :class:`Trackers`: it opens the ``--track`` trackers and any epoch
hooks (``kit.tune``'s pruning check is one), stores their run ids in ``trackers.json``, and
forwards every call. A tracker that raises (server gone, disk full, a bug) is logged once and
left out of later calls; only :class:`~kit.tracking.base.Pruned` goes through, since stopping
the run is what a hook raising it asks for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kit import runfolder
from kit.config import Config
from kit.tracking.base import (
    TRACKERS,
    Pruned,
    Tracker,
    TrackerStart,
    epoch_metrics,
    flatten,
    summary_metrics,
    track_names,
)

__all__ = ["Hook", "Trackers", "open_trackers"]

_log = logging.getLogger("kit")

#: An epoch hook: opened like a tracker, told the same things (it may raise Pruned).
Hook = Callable[[TrackerStart], Tracker]


class Trackers:
    """Several open trackers behind one tracker's calls; see the module docstring."""

    def __init__(self, entries: Sequence[tuple[str, Tracker]] = ()) -> None:
        self._entries = list(entries)

    def open(
        self, cfg: Config, run_dir: Path, hooks: Sequence[Hook] = (), first_epoch: int = 1
    ) -> Trackers:
        """Add the trackers of :func:`open_trackers`; returns self."""
        self._entries += open_trackers(cfg, run_dir, hooks, first_epoch)._entries
        return self

    @property
    def names(self) -> list[str]:
        """The trackers still receiving calls."""
        return [name for name, _ in self._entries]

    def _each(self, what: str, call: Callable[[Tracker], Any]) -> None:
        for entry in list(self._entries):
            name, tracker = entry
            try:
                call(tracker)
            except Pruned:
                raise
            except Exception as err:
                self._entries.remove(entry)
                _drop(name, what, err)

    def log_epoch(self, row: Mapping[str, Any]) -> None:
        """One metrics.csv row (a finished epoch)."""
        metrics = epoch_metrics(row)
        self._each("log_epoch", lambda t: t.log_epoch(int(row["epoch"]), metrics))

    def log_summary(self, summary: Mapping[str, Any]) -> None:
        """The numbers of the run's summary (its summary.json)."""
        metrics = summary_metrics(summary)
        self._each("log_summary", lambda t: t.log_summary(metrics))

    def log_artifacts(self, files: Sequence[Path]) -> None:
        """Those of ``files`` that exist."""
        present = [Path(f) for f in files if Path(f).is_file()]
        self._each("log_artifacts", lambda t: t.log_artifacts(present))

    def close(self, status: str) -> None:
        """The run ended as ``status``; every tracker is closed, then none is left."""
        self._each("close", lambda t: t.close(status))
        self._entries = []


def _drop(name: str, what: str, err: BaseException, flag: str = "") -> None:
    _log.warning(
        "tracker %s failed (%s: %s: %s)%s; training goes on without it, the run folder keeps "
        "everything",
        name,
        what,
        type(err).__name__,
        str(err).splitlines()[0] if str(err) else "",
        f"; check {flag}" if flag else "",
    )


def open_trackers(
    cfg: Config, run_dir: Path, hooks: Sequence[Hook] = (), first_epoch: int = 1
) -> Trackers:
    """The ``cfg.track`` trackers and ``hooks`` of the run in ``run_dir``, opened.

    A tracker that fails to open is warned about and skipped; its package being missing was
    already refused by ``Config.validate``.
    """
    run_dir = Path(run_dir)
    ids = runfolder.read_tracker_ids(run_dir) if cfg.resume else {}
    config = flatten(cfg.to_dict())
    entries: list[tuple[str, Tracker]] = []
    openers = [(name, TRACKERS.use(name).open) for name in track_names(cfg.track)]
    for k, hook in enumerate(hooks):
        openers.append((getattr(hook, "__name__", f"hook{k}"), hook))
    for name, opener in openers:
        start = TrackerStart(
            run_dir=run_dir,
            name=run_dir.name,
            config=config,
            study=cfg.study,
            mlflow_uri=cfg.mlflow_uri,
            resume_id=ids.get(name),
            first_epoch=first_epoch,
        )
        try:
            tracker = opener(start)
            if tracker.run_id is not None:
                runfolder.write_tracker_id(run_dir, name, tracker.run_id)
        except Exception as err:
            uri = cfg.mlflow_uri if name == "mlflow" else None  # the string it opened
            _drop(name, "open", err, f"--mlflow-uri {uri!r}" if uri else "")
            continue
        entries.append((name, tracker))
    return Trackers(entries)
