"""Whether a run folder can be resumed under a config: it has what ``--resume`` needs (a run's
``last.pt``, a K-fold parent's config.json), no live process writes it, and the config changes
none of the fields its ``last.pt`` was trained under (all but
:func:`kit.config.resumable_fields`; a K-fold parent singles out :func:`kit.config.split_fields`).

Checked before anything is written, so a refused resume leaves the folder as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kit.config import Config, resumable_fields, split_fields
from kit.errors import RunBusyError
from kit.runfolder.names import CONFIG, LAST
from kit.runfolder.read import is_complete, read_config, running_pid

__all__ = ["check_resumable", "check_unchanged", "nothing_to_train"]

#: fields a resumed run may change (field metadata ``resume``); any other change is refused
_MAY_CHANGE = resumable_fields()


def nothing_to_train(cfg: Config) -> bool:
    """Whether ``cfg`` resumes a single run that is already complete (it may have no last.pt:
    ``keep_last`` off or ``--prune``)."""
    return bool(cfg.resume) and cfg.folds is None and is_complete(Path(cfg.resume))


def check_resumable(cfg: Config, folder: Path) -> None:
    """Refuse to resume ``folder`` under ``cfg`` when that cannot work.

    A run folder needs its ``last.pt`` and no live process writing it, a K-fold parent
    (``cfg.folds`` set) its config.json. Both refuse any change of a field that shapes the
    weights, the data, the split or the schedule (all but :func:`kit.config.resumable_fields`),
    before anything is written; a K-fold parent's message singles out the split's fields.
    """
    if cfg.folds is None:
        if not (folder / LAST).is_file():
            raise FileNotFoundError(f"cannot resume {folder}: it has no last.pt")
        pid = running_pid(folder)
        if pid is not None:  # two processes in one folder would overwrite each other's files
            raise RunBusyError(
                f"cannot resume {folder}: it is still running (process {pid} on this machine); "
                "stop that process first (its last.pt stays), or wait for it to finish"
            )
    elif not (folder / CONFIG).is_file():
        raise FileNotFoundError(
            f"cannot resume {folder}: it has no config.json; expected a K-fold parent "
            "folder (<output_dir>/<ts>_<name>_kfold)"
        )
    check_unchanged(cfg, folder)


def check_unchanged(cfg: Config, folder: Path) -> None:
    """Refuse ``cfg`` for a resume of ``folder`` when it changes a field that shapes the
    weights, the data, the split or the schedule (all but :func:`kit.config.resumable_fields`);
    a K-fold parent's message singles out the split's fields."""
    saved = Config.from_dict(read_config(folder, missing_ok=False))
    if cfg.folds is not None and saved.folds is None:
        raise ValueError(
            f"cannot resume {folder} as a K-fold: it is a single run (its config.json has no "
            "folds); resume it without --folds, or give its K-fold parent folder"
        )
    changed = _changed(saved, cfg, split_fields()) if cfg.folds is not None else []
    if changed:
        raise ValueError(
            f"cannot resume {folder} with changed {'; '.join(changed)}: these decide which "
            "images each fold validates on; keep them, or start a new K-fold"
        )
    changed = _changed(saved, cfg, [f for f in saved.to_dict() if f not in _MAY_CHANGE])
    if changed:
        raise ValueError(
            f"cannot resume {folder} with changed {'; '.join(changed)}: they shape the weights, "
            "the data, the split or the schedule its last.pt was trained under; resume with "
            f"--resume {folder} alone (it loads the run's own config.json), or start a new run"
        )


def _changed(saved: Config, cfg: Config, names: Any) -> list[str]:
    return [
        f"{n}: {getattr(saved, n)!r} -> {getattr(cfg, n)!r}"
        for n in names
        if getattr(saved, n) != getattr(cfg, n)
    ]
