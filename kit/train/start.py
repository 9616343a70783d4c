"""Starting a run: its config resolved and checked, its folder created (or reopened)."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch

from kit import io
from kit import runfolder as rundir
from kit.config import Config
from kit.faces import FaceBoxes
from kit.pretrained import Weights
from kit.train import distributed
from kit.transforms import normalization

__all__ = ["open_run_dir", "record_inputs", "resolve"]

_log = logging.getLogger("kit")
#: fields that may differ when a run is resumed without a warning (they change no result).
_RUNTIME_FIELDS = ("resume", "quiet", "workers", "device", "eval_batch_size", "cache", "cache_dir")


def resolve(cfg: Config) -> Config:
    """Smoke variant, validation, and the checks of a resumed run folder."""
    if cfg.smoke:
        cfg = cfg.smoke_variant()
    cfg.validate()
    if cfg.resume:
        run_dir = Path(cfg.resume)
        if not (run_dir / "last.pt").is_file():
            raise FileNotFoundError(f"cannot resume {run_dir}: it has no last.pt")
        pid = rundir.running_pid(run_dir)
        if pid is not None:  # two processes in one folder would overwrite each other's files
            raise RuntimeError(
                f"cannot resume {run_dir}: it is still running (process {pid} on this machine); "
                "stop that process first (its last.pt stays), or wait for it to finish"
            )
        saved = Config.from_dict(io.read_json(run_dir / "config.json"))
        changed = [
            f"{f.name}: {getattr(saved, f.name)!r} -> {getattr(cfg, f.name)!r}"
            for f in dataclasses.fields(cfg)
            if f.name not in _RUNTIME_FIELDS and getattr(saved, f.name) != getattr(cfg, f.name)
        ]
        if changed:
            _log.warning("resuming %s with changed settings: %s", run_dir, "; ".join(changed))
    return cfg


def open_run_dir(cfg: Config, device: torch.device, ctx: distributed.DistContext) -> Path:
    """Create (or reopen, to resume) the run folder and write config.json and env.json."""
    run_dir = Path(cfg.resume) if cfg.resume else rundir.create_run_dir(cfg.output_dir, cfg.name)
    io.write_json(run_dir / "config.json", cfg.to_dict())
    env = {**rundir.env_info(str(device)), "processes": ctx.world_size}
    if cfg.resume and (run_dir / "env.json").is_file():
        first = io.read_json(run_dir / "env.json")
        env = {**first, "resumed": [*first.get("resumed", []), env]}
    io.write_json(run_dir / "env.json", env)
    return run_dir


def record_inputs(
    run_dir: Path, cfg: Config, weights: Weights | None, faces: FaceBoxes | None
) -> None:
    """Add to env.json what the model started from: the pretrained weights (source, hub id or
    file, sha256; null when trained from scratch), the normalisation they imply, and the face
    boxes' found / fallback counts (face crop only)."""
    env = io.read_json(run_dir / "env.json")
    norm = normalization(cfg)
    env["weights"] = None if weights is None else weights.to_dict()
    env["normalization"] = dataclasses.asdict(norm)
    env["faces"] = None if faces is None else faces.record()
    io.write_json(run_dir / "env.json", env)
