"""``fit(cfg) -> Run``: data, model, loss, optimizer, epochs, checkpoints, the run folder.

A run is usable per fold (``cfg.fold = k``), resumable (``cfg.resume = run_dir`` continues in
the same folder and, with ``deterministic=True``, ends with the same metrics), and leaves every
file of docs/run-folder.md. Started by ``torchrun``, every process runs ``fit`` and they train
one model together (``kit.train.distributed``, docs/multi-gpu.md); rank 0 writes the folder.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import albumentations as A
import torch

from kit.config import Config
from kit.inference import resolve_device
from kit.runfolder import Run
from kit.tracking import Hook, Pruned
from kit.train import distributed
from kit.train.runtime import setup_logging
from kit.train.start import open_run_dir, resolve
from kit.train.trainer import Trainer

__all__ = ["Run", "fit"]

_log = logging.getLogger("kit")


def fit(
    cfg: Config, train_transform: A.BasicTransform | None = None, *, hooks: Sequence[Hook] = ()
) -> Run:
    """Train ``cfg`` and write its run folder; return the :class:`Run`.

    ``train_transform`` replaces the preset's augmentations (it sees cropped, resized uint8
    pictures; kit adds crop/resize before and normalisation after). Ctrl-C saves the status,
    keeps ``last.pt`` of the last finished epoch, and exits with code 130. With ``cfg.folds``
    set it trains those folds under one parent folder; the ``Run``'s ``folds`` are the fold
    runs. ``hooks`` open like ``cfg.track``'s trackers and see every epoch (docs/tracking.md);
    one raising :class:`kit.tracking.Pruned` stops the run, marked ``pruned``, and ``fit``
    re-raises it.
    """
    if cfg.folds is not None:
        from kit.train.kfold import fit_folds  # late: kfold calls back into fit

        return fit_folds(cfg, train_transform)
    cfg = resolve(cfg)
    ctx, device = distributed.init(resolve_device(cfg.device))
    try:
        return _fit_process(cfg, train_transform, ctx, device, hooks)
    finally:
        distributed.teardown(ctx)


def _fit_process(
    cfg: Config,
    train_transform: A.BasicTransform | None,
    ctx: distributed.DistContext,
    device: torch.device,
    hooks: Sequence[Hook] = (),
) -> Run:
    """``fit`` in one process (of one or several): rank 0 writes the folder and prints."""
    if not ctx.is_main:
        cfg = cfg.replace(quiet=True)
    setup_logging(cfg.quiet)
    run_dir = distributed.broadcast(open_run_dir(cfg, device, ctx) if ctx.is_main else None, ctx)
    trainer = Trainer(cfg, run_dir, device, ctx, hooks)
    trainer.write_status("running")
    try:
        return trainer.run(train_transform)
    except Pruned as stop:
        trainer.stop("pruned")
        _log.info("pruned after epoch %d (%s)", trainer.state.epoch, stop)
        raise
    except KeyboardInterrupt:
        trainer.stop("interrupted")
        hint = f"continue with --resume {run_dir}" if trainer.state.epoch else "no epoch finished"
        _log.warning("interrupted after epoch %d; %s", trainer.state.epoch, hint)
        raise SystemExit(130) from None
    except Exception as err:
        why = f"{type(err).__name__}: {err}"
        try:
            trainer.stop("failed", why)
        except OSError:  # a full disk must not hide the error that stopped the run
            _log.warning("could not record the failure in %s", run_dir / "status.json")
        raise
