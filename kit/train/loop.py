"""``fit(cfg) -> Run``: data, model, loss, optimizer, epochs, checkpoints, the run folder.

A run is usable per fold (``cfg.fold = k``), resumable (``cfg.resume = run_dir`` continues in
the same folder and, with ``deterministic=True``, ends with the same metrics), and leaves every
file of docs/run-folder.md. Started by ``torchrun``, every process runs ``fit`` and they train
one model together (``kit.train.distributed``, docs/multi-gpu.md); rank 0 writes the folder.
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
from kit.runs.ledger import running_pid
from kit.train import distributed, rundir
from kit.train.checkpoint import TrainState, load, restore, save_best, save_last
from kit.train.loaders import Splits, epoch_seed, load_splits, train_loader
from kit.train.optim import LRSchedule, build_optimizer
from kit.train.pipeline import RunPictures
from kit.train.runtime import seed_everything, set_determinism, setup_logging
from kit.train.speed import prepare_model, training_module
from kit.train.steps import build_criterion, optimizer_steps, train_one_epoch, validate
from kit.transforms import build_transforms

__all__ = ["Run", "fit"]

_log = logging.getLogger("kit")
#: fields that may differ when a run is resumed without a warning (they change no result).
_RUNTIME_FIELDS = ("resume", "quiet", "workers", "device", "eval_batch_size", "cache", "cache_dir")


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
    keeps ``last.pt`` of the last finished epoch, and exits with code 130. With ``cfg.folds``
    set it trains those folds under one parent folder and returns a ``KFoldRun``.
    """
    if cfg.folds is not None:
        from kit.train.kfold import fit_folds  # late: kfold calls back into fit

        return fit_folds(cfg, train_transform)
    cfg = _resolve(cfg)
    ctx, device = distributed.init(resolve_device(cfg.device))
    try:
        return _fit_process(cfg, train_transform, ctx, device)
    finally:
        distributed.teardown(ctx)


def _open_run_dir(cfg: Config, device: torch.device, ctx: distributed.DistContext) -> Path:
    """Create (or reopen, to resume) the run folder and write config.json and env.json."""
    run_dir = Path(cfg.resume) if cfg.resume else rundir.create_run_dir(cfg.output_dir, cfg.name)
    io.write_json(run_dir / "config.json", cfg.to_dict())
    env = {**rundir.env_info(str(device)), "processes": ctx.world_size}
    if cfg.resume and (run_dir / "env.json").is_file():
        first = io.read_json(run_dir / "env.json")
        env = {**first, "resumed": [*first.get("resumed", []), env]}
    io.write_json(run_dir / "env.json", env)
    return run_dir


def _fit_process(
    cfg: Config,
    train_transform: A.BasicTransform | None,
    ctx: distributed.DistContext,
    device: torch.device,
) -> Run:
    """``fit`` in one process (of one or several): rank 0 writes the folder and prints."""
    if not ctx.is_main:
        cfg = cfg.replace(quiet=True)
    setup_logging(cfg.quiet)
    run_dir = distributed.broadcast(_open_run_dir(cfg, device, ctx) if ctx.is_main else None, ctx)
    trainer = _Trainer(cfg, run_dir, device, ctx)
    trainer.write_status("running")
    try:
        return trainer.run(train_transform)
    except KeyboardInterrupt:
        trainer.write_status("interrupted")
        hint = f"continue with --resume {run_dir}" if trainer.state.epoch else "no epoch finished"
        _log.warning("interrupted after epoch %d; %s", trainer.state.epoch, hint)
        raise SystemExit(130) from None
    except Exception as err:
        why = f"{type(err).__name__}: {err}"
        try:
            trainer.write_status("failed", why)
        except OSError:  # a full disk must not hide the error that stopped the run
            _log.warning("could not record the failure in %s", run_dir / "status.json")
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
        pid = running_pid(run_dir)
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


class _Trainer:
    def __init__(
        self, cfg: Config, run_dir: Path, device: torch.device, ctx: distributed.DistContext
    ) -> None:
        self.cfg, self.run_dir, self.device, self.ctx = cfg, run_dir, device, ctx
        self.state = TrainState()
        self.pictures = RunPictures.from_files()
        self.train_model: torch.nn.Module | None = None  # the model wrapped for training

    def write_status(self, status: str, error: str | None = None) -> None:
        if self.ctx.is_main:
            rundir.write_status(self.run_dir, status, self.state.epoch, error)

    def predict(self, model: torch.nn.Module, df: Any) -> Any:
        """Probabilities of every row of ``df``, computed in shares by all processes."""
        cfg, pictures = self.cfg, self.pictures.eval

        def share(part: Any) -> Any:
            return predict(model, part, cfg, tta=cfg.tta, prepared=pictures)

        return distributed.predict_sharded(share, df, self.ctx)

    def run(self, train_transform: A.BasicTransform | None) -> Run:
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
        rows: list[dict[str, Any]] = []
        if cfg.resume:
            self.state = restore(load(self.run_dir / "last.pt", device), parts)
            rows = [r for r in rundir.read_metrics(self.run_dir) if r["epoch"] <= self.state.epoch]
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
            stop = bool(cfg.early_stopping) and self.state.bad_epochs >= cfg.early_stopping
            if distributed.broadcast(stop, ctx):  # every process stops at the same epoch
                _log.info("early stop: no val macro F1 gain in %d epochs", cfg.early_stopping)
                break
        return self._finish(model, data, rows)

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

    def _finish(self, model: torch.nn.Module, data: Splits, rows: list[dict[str, Any]]) -> Run:
        cfg, run_dir, t0, main = self.cfg, self.run_dir, time.time(), self.ctx.is_main
        distributed.barrier(self.ctx)  # rank 0 has written best.pt
        best = load(run_dir / "best.pt", self.device)
        model.load_state_dict(best["model"])
        val_probs = self.predict(model, data.val)
        keys = data.val[["image_id", "person_id", "label"]].assign(fold=data.fold)
        if main:
            rundir.write_probs(run_dir / "val_probs.csv", keys, val_probs)
        if data.eval is not None:
            test_probs = self.predict(model, data.eval)
            if main:
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
        if main:
            io.write_json(run_dir / "summary.json", summary)
        self.write_status("complete")
        _log.info(
            "done: best epoch %d, val macro F1 %.4f (accuracy %.4f) -> %s",
            summary["best_epoch"], summary["val_macro_f1"], summary["val_accuracy"], run_dir,
        )  # fmt: skip
        return Run(
            run_dir, "complete", cfg, summary, summary["val_macro_f1"], summary["best_epoch"]
        )
