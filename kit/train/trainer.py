"""The training of one run folder in one process: its parts, its epochs, its checkpoints.

``Trainer.run`` builds data, model, loss, optimizer and schedule, restores ``last.pt`` when
resuming, trains epoch after epoch (each epoch seeded on its own, so a resumed run ends like an
uninterrupted one), keeps ``best.pt`` / ``last.pt`` / ``metrics.csv`` current, and hands over to
``kit.train.finish``. Under torchrun every process runs one; rank 0 writes the files.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import albumentations as A
import torch

from kit import runfolder as rundir
from kit.config import Config
from kit.data.dataset import ImageDataset
from kit.inference import predict
from kit.models import create_model
from kit.runfolder import Run
from kit.tracking import Hook, Trackers, open_trackers
from kit.train import distributed
from kit.train.checkpoint import TrainState, load, restore, save_best, save_last
from kit.train.finish import finish, write_curves
from kit.train.loaders import Splits, epoch_seed, load_splits, train_loader
from kit.train.optim import LRSchedule, build_optimizer
from kit.train.pipeline import RunPictures
from kit.train.runtime import seed_everything, set_determinism
from kit.train.speed import prepare_model, training_module
from kit.train.steps import build_criterion, optimizer_steps, train_one_epoch, validate
from kit.transforms import build_transforms

__all__ = ["Trainer"]

_log = logging.getLogger("kit")


class Trainer:
    """One process's share of one run: builds the parts, runs the epochs, then ``finish``."""

    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        device: torch.device,
        ctx: distributed.DistContext,
        hooks: Sequence[Hook] = (),
    ) -> None:
        self.cfg, self.run_dir, self.device, self.ctx = cfg, run_dir, device, ctx
        self.hooks = hooks
        self.trackers = Trackers()  # opened in run(), once the resumed epoch is known
        self.rows: list[dict[str, Any]] = []
        self.state = TrainState()
        self.pictures = RunPictures.from_files()
        self.train_model: torch.nn.Module | None = None  # the model wrapped for training

    def write_status(self, status: str, error: str | None = None) -> None:
        """The run's status.json (rank 0 only)."""
        if self.ctx.is_main:
            rundir.write_status(self.run_dir, status, self.state.epoch, error)

    def stop(self, status: str, error: str | None = None) -> None:
        """The run ends early as ``status``: status.json, the curves so far, the trackers."""
        self.write_status(status, error)
        if self.ctx.is_main and self.rows:
            write_curves(self.run_dir, self.rows)
        self.trackers.close(status)

    def predict(self, model: torch.nn.Module, df: Any) -> Any:
        """Probabilities of every row of ``df``, computed in shares by all processes."""
        cfg, pictures = self.cfg, self.pictures.eval

        def share(part: Any) -> Any:
            return predict(model, part, cfg, tta=cfg.tta, prepared=pictures)

        return distributed.predict_sharded(share, df, self.ctx)

    def run(self, train_transform: A.BasicTransform | None) -> Run:
        """Train every remaining epoch, then :func:`kit.train.finish.finish` the run."""
        cfg, device, ctx = self.cfg, self.device, self.ctx
        set_determinism(cfg.deterministic)
        seed_everything(cfg.seed)
        data = load_splits(cfg)
        self.pictures = RunPictures.for_run(cfg, data, ctx, progress=not cfg.quiet)
        prepared = self.pictures.prepared
        train_tf, _ = build_transforms(cfg, augment=train_transform, prepared=prepared)
        train_ds = ImageDataset(
            data.train, train_tf, "label", cfg.age_thresholds, cfg.head, self.pictures.train
        )
        generator = torch.Generator()
        loader = train_loader(train_ds, cfg, generator, ctx.rank, ctx.world_size)
        model = prepare_model(create_model(cfg).to(device), cfg)
        criterion = build_criterion(cfg, train_ds.targets).to(device)
        optimizer = build_optimizer(model, cfg)
        parts = {
            "model": model,
            "optimizer": optimizer,
            "schedule": LRSchedule(optimizer, cfg, optimizer_steps(loader, cfg)),
            "scaler": torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda"),
        }
        rows = self.rows
        if cfg.resume:
            self.state = restore(load(self.run_dir / "last.pt", device), parts)
            rows += [r for r in rundir.read_metrics(self.run_dir) if r["epoch"] <= self.state.epoch]
        if ctx.is_main:  # after last.pt: a resumed run continues its tracker runs at this epoch
            self.trackers = open_trackers(cfg, self.run_dir, self.hooks, self.state.epoch + 1)
        self.train_model = training_module(model, cfg, ctx, device)
        _log.info(
            "run %s: %s/%s on %s; %d train / %d val images (%d / %d people) from %s",
            self.run_dir, cfg.model, cfg.head, device, len(data.train), len(data.val),
            data.train["person_id"].nunique(), data.val["person_id"].nunique(), data.data_dir,
        )  # fmt: skip
        for epoch in range(self.state.epoch + 1, cfg.epochs + 1):
            seed = epoch_seed(cfg.seed, epoch)
            seed_everything(seed)
            generator.manual_seed(seed)
            train_tf.set_random_seed(seed)
            rows.append(self._epoch(parts, loader, criterion, data, epoch))
            if ctx.is_main:
                rundir.write_metrics(self.run_dir, rows)
                save_last(self.run_dir / "last.pt", parts, self.state, cfg.to_dict())
            self.write_status("running")
            self.trackers.log_epoch(rows[-1])  # after last.pt: a hook may stop the run here
            stop = bool(cfg.early_stopping) and self.state.bad_epochs >= cfg.early_stopping
            if distributed.broadcast(stop, ctx):  # every process stops at the same epoch
                _log.info("early stop: no val macro F1 gain in %d epochs", cfg.early_stopping)
                break
        return finish(self, model, data, rows)

    def _epoch(self, parts: dict[str, Any], loader: Any, criterion: Any, data: Splits, epoch: int):
        cfg, state, t0 = self.cfg, self.state, time.time()
        train_parts = {**parts, "model": self.train_model or parts["model"]}
        train_loss, lr = train_one_epoch(train_parts, loader, criterion, cfg, epoch)
        train_loss = distributed.mean(train_loss, self.ctx)
        # scores of the whole validation set, the same on every process
        _, scores, val_loss = validate(parts["model"], data.val, cfg, self.predict)
        parts["schedule"].epoch_end(scores["macro_f1"])
        improved = scores["macro_f1"] > state.best_score
        if improved:
            state.best_score, state.best_epoch, state.bad_epochs = scores["macro_f1"], epoch, 0
            if self.ctx.is_main:
                save_best(
                    self.run_dir / "best.pt", parts["model"], cfg.to_dict(), epoch, state.best_score
                )
        else:
            state.bad_epochs += 1
        state.epoch = epoch
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss}
        row.update({f"val_{k}": scores[k] for k in ("macro_f1", "accuracy")})
        row.update({f"val_f1_{h}": scores[f"f1_{h}"] for h in ("mask", "gender", "age")})
        row.update(lr=lr, seconds=round(time.time() - t0, 3))
        _log.info(
            "epoch %d/%d  train_loss %.4f  val_loss %.4f  val_f1 %.4f (mask %.3f gender %.3f "
            "age %.3f)  acc %.4f  lr %.2e  %.1fs%s",
            epoch, cfg.epochs, train_loss, val_loss, row["val_macro_f1"], row["val_f1_mask"],
            row["val_f1_gender"], row["val_f1_age"], row["val_accuracy"], lr, row["seconds"],
            "  *best" if improved else "",
        )  # fmt: skip
        return row
