"""The end of a run: the best weights' probabilities, the submission, the summary, the Run."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from kit import io
from kit import runfolder as rundir
from kit.labels import class_name
from kit.metrics import summarize
from kit.plot import confusion_png, curves_png
from kit.runfolder import Run, write_submission
from kit.train import distributed
from kit.train.checkpoint import load
from kit.train.loaders import Splits

if TYPE_CHECKING:
    from kit.train.trainer import Trainer

__all__ = ["finish", "write_curves"]

_log = logging.getLogger("kit")


def write_curves(run_dir: Path, rows: list[dict[str, Any]]) -> Path:
    """The per-epoch curves picture of ``rows`` (metrics.csv) in the run folder."""
    return curves_png(rows, run_dir / rundir.CURVES_PNG, title=run_dir.name)


def finish(
    trainer: Trainer, model: torch.nn.Module, data: Splits, rows: list[dict[str, Any]]
) -> Run:
    """Reload ``best.pt`` into ``model``, write its probabilities (and the submission when
    there is an eval set) and ``summary.json``, mark the run complete; rank 0 alone writes."""
    cfg, run_dir, t0, main = trainer.cfg, trainer.run_dir, time.time(), trainer.ctx.is_main
    distributed.barrier(trainer.ctx)  # rank 0 has written best.pt
    best = load(run_dir / "best.pt", trainer.device)
    model.load_state_dict(best["model"])
    val_probs = trainer.predict(model, data.val)
    keys = data.val[["image_id", "person_id", "label"]].assign(fold=data.fold)
    if main:
        rundir.write_probs(run_dir / "val_probs.csv", keys, val_probs)
    if data.eval is not None:
        test_probs = trainer.predict(model, data.eval)
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
        write_curves(run_dir, rows)
        title = f"{run_dir.name}: val macro F1 {summary['val_macro_f1']:.4f}"
        names = [f"{c} {class_name(c)}" for c in range(len(summary["confusion"]))]
        confusion_png(summary["confusion"], run_dir / rundir.CONFUSION_PNG, class_names=names,
                      title=title)  # fmt: skip
        trainer.trackers.log_summary(summary)
        files = (rundir.CONFUSION_PNG, rundir.CURVES_PNG, rundir.SUBMISSION)
        trainer.trackers.log_artifacts([run_dir / f for f in files])
    trainer.write_status("complete")
    trainer.trackers.close("complete")
    _log.info(
        "done: best epoch %d, val macro F1 %.4f (accuracy %.4f) -> %s",
        summary["best_epoch"], summary["val_macro_f1"], summary["val_accuracy"], run_dir,
    )  # fmt: skip
    return Run(run_dir, "complete", cfg, summary, summary["val_macro_f1"], summary["best_epoch"])
