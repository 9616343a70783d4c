"""The end of a run: the best weights' probabilities, the submission, the summary, the Run."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import torch

from kit import io
from kit import runfolder as rundir
from kit.metrics import summarize
from kit.runfolder import Run, write_submission
from kit.train import distributed
from kit.train.checkpoint import load
from kit.train.loaders import Splits

if TYPE_CHECKING:
    from kit.train.trainer import Trainer

__all__ = ["finish"]

_log = logging.getLogger("kit")


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
    trainer.write_status("complete")
    _log.info(
        "done: best epoch %d, val macro F1 %.4f (accuracy %.4f) -> %s",
        summary["best_epoch"], summary["val_macro_f1"], summary["val_accuracy"], run_dir,
    )  # fmt: skip
    return Run(run_dir, "complete", cfg, summary, summary["val_macro_f1"], summary["best_epoch"])
