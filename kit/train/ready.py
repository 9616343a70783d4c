"""What is checked before a run folder is written: the config in full (:func:`check`, before
``--smoke`` shrinks it; :func:`smoke_note` says what it shrank) and the folder a run resumes.
The data, the model and a resumed ``last.pt`` follow, still before the folder
(:func:`kit.train.loop.prepare`): none of them leaves a run folder behind when refused.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from kit.config import Config, check_registries
from kit.data.pseudo import check_pseudo_sources
from kit.runfolder import is_complete
from kit.train.checkpoint import check_resumable, check_unchanged
from kit.train.optim import check_scheduler_kwargs

__all__ = ["check", "nothing_to_train", "smoke_note"]


def check(cfg: Config) -> Config:
    """``cfg`` checked in full (then shrunk to its smoke variant with ``smoke``), with the
    folder it resumes: everything that can be refused is refused before a folder is written."""
    for checked in (cfg, cfg.smoke_variant()) if cfg.smoke else (cfg,):
        checked.validate()
        check_registries(checked)  # every registry is loaded once kit.train is imported
        check_scheduler_kwargs(checked)
        check_pseudo_sources(checked)
    if checked.resume and nothing_to_train(checked):
        check_unchanged(checked, Path(checked.resume))  # a finished run: nothing else to check
    elif checked.resume:
        check_resumable(checked, Path(checked.resume))
    return checked


def nothing_to_train(cfg: Config) -> bool:
    """Whether ``cfg`` resumes a single run that is already complete (it may have no last.pt:
    ``keep_last`` off or ``--prune``)."""
    return bool(cfg.resume) and cfg.folds is None and is_complete(Path(cfg.resume))


def smoke_note(cfg: Config, small: Config) -> str:
    """``smoke: epochs 20 -> 2, image_size 380x380 -> 64x48, ...``: what ``--smoke`` changed."""

    def show(value: object) -> str:
        return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)

    changed = [
        f"{f.name} {show(getattr(cfg, f.name))} -> {show(getattr(small, f.name))}"
        for f in dataclasses.fields(Config)
        if f.name != "smoke" and getattr(cfg, f.name) != getattr(small, f.name)
    ]
    return "smoke: " + (", ".join(changed) or "nothing to shrink")
