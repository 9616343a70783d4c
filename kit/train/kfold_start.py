"""Starting a K-fold: the checks of a resumed parent folder, and the parent folder opened."""

from __future__ import annotations

from pathlib import Path

from kit import io
from kit import runfolder as rundir
from kit.config import Config
from kit.train import distributed

__all__ = ["check_resume", "open_parent"]

#: fields that decide which images each fold validates on: a resumed parent must keep them.
_SPLIT_FIELDS = ("data_dir", "fixes", "limit_people", "n_folds", "seed")


def check_resume(cfg: Config, parent: Path) -> None:
    """A resumed parent must exist and keep the fields that decide the split."""
    if not (parent / "config.json").is_file():
        raise FileNotFoundError(
            f"cannot resume {parent}: it has no config.json; expected a K-fold parent "
            "folder (<output_dir>/<ts>_<name>_kfold)"
        )
    saved = Config.from_dict(io.read_json(parent / "config.json"))
    if saved.folds is None:
        raise ValueError(
            f"cannot resume {parent} as a K-fold: it is a single run (its config.json has no "
            "folds); resume it without --folds, or give its K-fold parent folder"
        )
    changed = [
        f"{f}: {getattr(saved, f)!r} -> {getattr(cfg, f)!r}"
        for f in _SPLIT_FIELDS
        if getattr(saved, f) != getattr(cfg, f)
    ]
    if changed:
        raise ValueError(
            f"cannot resume {parent} with changed {'; '.join(changed)}: these decide which "
            "images each fold validates on; keep them, or start a new K-fold"
        )


def open_parent(cfg: Config, device: str, ctx: distributed.DistContext) -> Path:
    """A new parent folder (or the resumed one) with its config.json and env.json."""
    env = {**rundir.env_info(device), "processes": ctx.world_size}
    if not cfg.resume:
        parent = rundir.create_run_dir(cfg.output_dir, f"{cfg.name}_kfold")
    else:
        parent = Path(cfg.resume)
        if (parent / "env.json").is_file():
            first = io.read_json(parent / "env.json")
            env = {**first, "resumed": [*first.get("resumed", []), env]}
    io.write_json(parent / "config.json", cfg.to_dict())
    io.write_json(parent / "env.json", env)
    return parent
