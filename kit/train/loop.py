"""``fit(cfg) -> Run``: data, model, loss, optimizer, epochs, checkpoints, the run folder.

A run is usable per fold (``cfg.fold = k``), resumable (``cfg.resume = run_dir`` continues in
the same folder and, with ``deterministic=True``, ends with the same metrics), and leaves every
file of docs/run-folder.md.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import albumentations as A
import torch

from kit import io
from kit.config import Config
from kit.data.dataset import ImageDataset
from kit.inference import predict, resolve_device, write_submission
from kit.metrics import summarize
from kit.models import create_model
from kit.train import rundir
from kit.train.checkpoint import TrainState, load, restore, save_best, save_last
from kit.train.loaders import Splits, epoch_seed, load_splits, train_loader
from kit.train.optim import LRSchedule, build_optimizer
from kit.train.runtime import seed_everything, set_determinism, setup_logging
from kit.train.steps import build_criterion, optimizer_steps, train_one_epoch, validate
from kit.transforms import build_transforms

__all__ = ["Run", "fit"]

_log = logging.getLogger("kit")
#: fields that may differ when a run is resumed without a warning (they change no result).
_RUNTIME_FIELDS = ("resume", "quiet", "workers", "device", "eval_batch_size")


@dataclass
class Run:
    """What ``fit`` returns: where the run went and how it scored."""

    run_dir: Path
    status: str
    config: Config
    summary: dict[str, Any]
    best_score: float
    best_epoch: int


def fit(cfg: Config, train_transform: A.BasicTransform | None = None) -> Run:
    """Train ``cfg`` and write its run folder; return the :class:`Run`.

    ``train_transform`` replaces the preset's augmentations (it sees cropped, resized uint8
    pictures; kit adds crop/resize before and normalisation after). Ctrl-C saves the status,
    keeps ``last.pt`` of the last finished epoch, and exits with code 130.
    """
    cfg = _resolve(cfg)
    setup_logging(cfg.quiet)
    device = resolve_device(cfg.device)
    run_dir = Path(cfg.resume) if cfg.resume else rundir.create_run_dir(cfg.output_dir, cfg.name)
    io.write_json(run_dir / "config.json", cfg.to_dict())
    env = rundir.env_info(str(device))
    if cfg.resume and (run_dir / "env.json").is_file():
        first = io.read_json(run_dir / "env.json")
        env = {**first, "resumed": [*first.get("resumed", []), env]}
    io.write_json(run_dir / "env.json", env)
    trainer = _Trainer(cfg, run_dir, device)
    rundir.write_status(run_dir, "running", trainer.state.epoch)
    try:
        return trainer.run(train_transform)
    except KeyboardInterrupt:
        rundir.write_status(run_dir, "interrupted", trainer.state.epoch)
        hint = f"continue with --resume {run_dir}" if trainer.state.epoch else "no epoch finished"
        _log.warning("interrupted after epoch %d; %s", trainer.state.epoch, hint)
        raise SystemExit(130) from None
    except Exception as err:
        rundir.write_status(run_dir, "failed", trainer.state.epoch, f"{type(err).__name__}: {err}")
        raise


def _resolve(cfg: Config) -> Config:
    """Smoke variant, validation, and the checks of a resumed run folder."""
    if cfg.smoke:
        cfg = cfg.smoke_variant()
    cfg.validate()
    if cfg.resume:
        run_dir = Path(cfg.resume)
        if not (run_dir / "last.pt").is_file():
            raise FileNotFoundError(f"cannot resume {run_dir}: it has no last.pt")
        saved = Config.from_dict(io.read_json(run_dir / "config.json"))
        changed = [
            f"{f.name}: {getattr(saved, f.name)!r} -> {getattr(cfg, f.name)!r}"
            for f in dataclasses.fields(cfg)
            if f.name not in _RUNTIME_FIELDS and getattr(saved, f.name) != getattr(cfg, f.name)
        ]
        if changed:
            _log.warning("resuming %s with changed settings: %s", run_dir, "; ".join(changed))
    return cfg


class _Trainer:
    def __init__(self, cfg: Config, run_dir: Path, device: torch.device) -> None:
        self.cfg, self.run_dir, self.device = cfg, run_dir, device
        self.state = TrainState()

    def run(self, train_transform: A.BasicTransform | None) -> Run:
        cfg, device = self.cfg, self.device
        set_determinism(cfg.deterministic)
        seed_everything(cfg.seed)
        data = load_splits(cfg)
        train_tf, _ = build_transforms(cfg, augment=train_transform)
        train_ds = ImageDataset(data.train, train_tf, "label", cfg.age_thresholds, cfg.head)
        generator = torch.Generator()
        loader = train_loader(train_ds, cfg, generator)
        model = create_model(cfg).to(device)
        criterion = build_criterion(cfg, train_ds.targets).to(device)
        optimizer = build_optimizer(model, cfg)
        parts = {
            "model": model,
            "optimizer": optimizer,
            "schedule": LRSchedule(optimizer, cfg, optimizer_steps(loader, cfg)),
            "scaler": torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda"),
        }
        rows: list[dict[str, Any]] = []
        if cfg.resume:
            self.state = restore(load(self.run_dir / "last.pt", device), parts)
            rows = [r for r in rundir.read_metrics(self.run_dir) if r["epoch"] <= self.state.epoch]
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
            rundir.write_metrics(self.run_dir, rows)
            save_last(self.run_dir / "last.pt", parts, self.state, cfg.to_dict())
            rundir.write_status(self.run_dir, "running", epoch)
            if cfg.early_stopping and self.state.bad_epochs >= cfg.early_stopping:
                _log.info("early stop: no val macro F1 gain in %d epochs", cfg.early_stopping)
                break
        return self._finish(model, data, rows)

    def _epoch(self, parts: dict[str, Any], loader: Any, criterion: Any, data: Splits, epoch: int):
        cfg, state, t0 = self.cfg, self.state, time.time()
        train_loss, lr = train_one_epoch(parts, loader, criterion, cfg, epoch)
        _, scores, val_loss = validate(parts["model"], data.val, cfg)
        parts["schedule"].epoch_end(scores["macro_f1"])
        improved = scores["macro_f1"] > state.best_score
        if improved:
            state.best_score, state.best_epoch, state.bad_epochs = scores["macro_f1"], epoch, 0
            save_best(
                self.run_dir / "best.pt", parts["model"], cfg.to_dict(), epoch, scores["macro_f1"]
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

    def _finish(self, model: torch.nn.Module, data: Splits, rows: list[dict[str, Any]]) -> Run:
        cfg, run_dir, t0 = self.cfg, self.run_dir, time.time()
        best = load(run_dir / "best.pt", self.device)
        model.load_state_dict(best["model"])
        val_probs = predict(model, data.val, cfg, tta=cfg.tta)
        keys = data.val[["image_id", "person_id", "label"]].assign(fold=data.fold)
        rundir.write_probs(run_dir / "val_probs.csv", keys, val_probs)
        if data.eval is not None:
            test_probs = predict(model, data.eval, cfg, tta=cfg.tta)
            rundir.write_probs(run_dir / "test_probs.csv", data.eval[["image_id"]], test_probs)
            write_submission(test_probs, data.eval, run_dir / "submission.csv")
        scores = summarize(data.val["label"].to_numpy(), val_probs.argmax(1))
        summary = {
            "name": cfg.name,
            "status": "complete",
            "best_epoch": int(best["epoch"]),
            "epochs_run": len(rows),
            **{f"val_{k}": v for k, v in scores.items() if k != "confusion"},
            "confusion": scores["confusion"],
            "n_val": len(data.val),
            "seconds": round(sum(r["seconds"] for r in rows) + time.time() - t0, 3),
        }
        io.write_json(run_dir / "summary.json", summary)
        rundir.write_status(run_dir, "complete", self.state.epoch)
        _log.info(
            "done: best epoch %d, val macro F1 %.4f (accuracy %.4f) -> %s",
            summary["best_epoch"], summary["val_macro_f1"], summary["val_accuracy"], run_dir,
        )  # fmt: skip
        return Run(
            run_dir, "complete", cfg, summary, summary["val_macro_f1"], summary["best_epoch"]
        )
