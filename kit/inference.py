"""Predictions from a trained model or a run folder, through training's own forward pass and
the run's own evaluation transform (:func:`kit.train.forward.predict_frame`). A recipe reaches
``predict`` as ``kit.predict_probs``: ``kit.predict`` is the command module.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from torch import nn

from kit.config import Config, saved_config
from kit.device import resolve_device
from kit.models import create_model
from kit.runfolder import BEST, ensure_run_code, read_config
from kit.train.checkpoint import load
from kit.train.forward import predict_frame
from kit.tta import TTA

__all__ = ["TTA", "load_run_model", "predict", "resolve_device"]


def load_run_model(
    run_dir: str | os.PathLike[str], device: str = "cpu", weights: str = BEST
) -> tuple[nn.Module, Config]:
    """(model with the run's best weights, its Config) from a run folder's ``best.pt`` (or
    ``weights``: ``refit.pt``, the weights a refit run's submission used)."""
    ckpt = load(Path(run_dir) / weights, map_location=device)
    cfg = Config.from_dict(saved_config(ckpt["config"]))
    ensure_run_code(run_dir, cfg)  # the model, head, ... the run's recipe registered
    # the trained weights replace any starting weights, so the file is not needed any more
    model = create_model(cfg.replace(pretrained=False, pretrained_file=None))
    model.load_state_dict(ckpt["model"])
    return model.to(device), cfg


def predict(
    model_or_run_dir: nn.Module | str | os.PathLike[str],
    df: pd.DataFrame,
    cfg: Config | None = None,
    batch_size: int | None = None,
    tta: str = "none",
    prepared: Callable[[str], np.ndarray] | None = None,
    weights: str = BEST,
) -> np.ndarray:
    """(n, 18) probabilities for the rows of ``df`` (column ``path``), in row order; a
    per-task run (``--head mask``, ``gender`` or ``age``) gives its task's (n, 3) or (n, 2).

    Given a run folder, its ``best.pt`` (or ``weights``) and config are used (``cfg`` then
    only chooses the device, batch size and workers); given a model, ``cfg`` is its config
    (required).
    ``tta`` names the test-time views averaged (``kit.transforms.tta_views``), e.g. ``"hflip"``.
    ``prepared`` reads pictures already cropped and resized for ``cfg`` by path (an
    ``ImageCache``); by default every file is decoded and prepared (a face crop around the
    stored face boxes of the run's data folder, :func:`kit.train.forward.frame_loader`).
    """
    if not isinstance(model_or_run_dir, nn.Module):  # the views the run's recipe registered
        saved = read_config(model_or_run_dir)  # {} without one: best.pt's absence says more
        ensure_run_code(model_or_run_dir, Config.from_dict(saved))
    TTA.check(tta)  # an unknown view fails before a model is loaded
    if isinstance(model_or_run_dir, nn.Module):
        if cfg is None:
            raise ValueError("predict(model, df) needs the model's cfg for its transforms")
        model = model_or_run_dir
    else:
        device = resolve_device(cfg.device if cfg is not None else "auto")
        model, run_cfg = load_run_model(model_or_run_dir, device=str(device), weights=weights)
        if cfg is not None:
            run_cfg = run_cfg.replace(
                eval_batch_size=cfg.eval_batch_size, workers=cfg.workers, amp=cfg.amp
            )
        cfg = run_cfg
    return predict_frame(model, df, cfg, batch_size=batch_size, tta=tta, prepared=prepared)


if __name__ == "__main__":  # a library, not a command: say which command predicts
    print(
        "error: kit.inference is a library (predict, load_run_model); to predict from the shell "
        "run: python -m kit.predict RUN_DIR [--data-dir DIR] [-o submission.csv]",
        file=sys.stderr,
    )
    raise SystemExit(2)
