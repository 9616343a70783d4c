"""``fit(cfg) -> Run``: one run folder, or with ``cfg.folds`` a K-fold of them.

K-fold: a parent folder ``<output_dir>/<ts>_<name>_kfold/`` holds one ordinary run folder per
fold beside its own files (out-of-fold ``val_probs.csv``, fold-averaged ``test_probs.csv``, CV
``summary.json``); each fold is exactly the run of ``cfg`` with ``fold = k`` (same seed, same
split as a lone ``--fold k`` run). Resuming a parent keeps the complete folds, resumes an
interrupted one and trains the missing ones. A resumed run (``cfg.resume``) continues in its
folder and ends with the same metrics. Under ``torchrun`` every process runs ``fit`` and
they train one model together (docs/multi-gpu.md); rank 0 decides and writes the folders.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from pathlib import Path

import albumentations as A
import pandas as pd
import torch
from torch import nn

from kit import runfolder as rundir
from kit import splits as kit_splits
from kit.cli import sigterm_as_interrupt
from kit.config import Config, parse_folds, smoke_note
from kit.device import resolve_device
from kit.errors import ConfigError
from kit.losses import register_loss
from kit.models import Weights, register_model, resolve_weights
from kit.runfolder import (
    PSEUDO_SUMMARY_KEY,
    Run,
    find_fold_run,
    read_run,
    run_score,
    write_parent,
)
from kit.runfolder.read import check_resumable
from kit.tracking import Hook
from kit.train import distributed
from kit.train.folder import fit_run, open_folder
from kit.train.setup import check

__all__ = ["INSTEAD_OF_FIT", "Measured", "fit", "next_commands"]

_log = logging.getLogger("kit")

#: What ``fit`` does instead of training while set: ``--estimate`` and ``--find-lr`` (kit.recipe)
#: measure the run a recipe asks for, with the config and transform the recipe's own code built.
INSTEAD_OF_FIT: ContextVar[Callable[[Config, A.BasicTransform | None], object] | None]
INSTEAD_OF_FIT = ContextVar("instead_of_fit", default=None)


class Measured(Exception):
    """Raised by an :data:`INSTEAD_OF_FIT` action once it has reported: the recipe's code after
    its ``fit`` (which reads the run it would have trained) does not run."""


def fit(
    cfg: Config,
    train_transform: A.BasicTransform | None = None,
    *,
    model: Callable[..., nn.Module] | None = None,
    loss: Callable[..., nn.Module] | None = None,
    hooks: Sequence[Hook] = (),
) -> Run:
    """Train ``cfg`` and write its run folder (a K-fold parent with ``cfg.folds``, whose
    :class:`Run` holds the fold runs in ``folds``); bad data or config is refused before any
    folder is written.

    ``model`` / ``loss``: a backbone or loss factory of one's own (what
    :func:`kit.register_model` / :func:`kit.register_loss` take), say from a notebook cell,
    registered under its own name, which the config then names, so the run folder records it
    and the ledger, ``kit.predict`` and ``--resume`` find it again (a module or a lambda is
    refused). ``train_transform`` replaces the preset's augmentations (on cropped, resized uint8
    pictures; normalisation follows). Ctrl-C keeps ``last.pt`` of the last finished epoch and
    exits with code 130 (SIGTERM: 143). ``hooks`` see every epoch like ``cfg.track``'s trackers
    (docs/tracking.md); one raising :class:`kit.tracking.Pruned` stops the run as ``pruned``
    and ``fit`` re-raises it.
    """
    cfg = own_pieces(cfg, model=model, loss=loss)
    instead = INSTEAD_OF_FIT.get()
    if instead is not None:
        return instead(cfg, train_transform)  # type: ignore[return-value] (it never returns)
    with sigterm_as_interrupt():
        checked = check(cfg)
        ctx, device = distributed.init(resolve_device(checked.device))
        try:
            if ctx.is_main and not checked.resume:  # an unwritable output stops before the data
                rundir.check_output_dir(checked.output_dir)
            if checked.smoke and ctx.is_main and not checked.quiet:
                print(smoke_note(cfg, checked), flush=True)
            # before any folder: weights neither cached nor downloadable fail in seconds
            weights = resolve_weights(checked)
            if checked.folds is None:
                run = fit_run(checked, train_transform, ctx, device, weights, hooks)
            else:
                run = _fit_folds(checked, train_transform, ctx, device, weights)
            if ctx.is_main and run.status == "complete":
                _log.info("%s", next_commands(run.run_dir, checked.name))
            return run
        finally:
            distributed.teardown(ctx)


def own_pieces(
    cfg: Config,
    *,
    model: Callable[..., nn.Module] | None = None,
    loss: Callable[..., nn.Module] | None = None,
) -> Config:
    """``cfg`` naming ``model`` and ``loss`` (factories of one's own), each registered under its
    function's or class's name; ConfigError for anything no process could build again."""
    changes = {}
    for field, piece, register in (("model", model, register_model), ("loss", loss, register_loss)):
        if piece is None:
            continue
        name = getattr(piece, "__name__", "<lambda>")
        if isinstance(piece, nn.Module) or not callable(piece) or name == "<lambda>":
            raise ConfigError(
                f"kit.fit's {field}= takes a named function or class that builds it "
                f"(def my_{field}(): ...), not {type(piece).__name__}: kit.predict and --resume "
                "build it again from the run's recorded code"
            )
        register(name)(piece)  # the same definition again (a cell run twice) replaces it
        changes[field] = name
    return cfg.replace(**changes) if changes else cfg


def next_commands(run_dir: Path, name: str) -> str:
    """What to do after a run, with its folder filled in: its report, the ledger against the
    baseline (or against this run when it is the baseline), an ensemble with another run."""
    runs = run_dir.parent
    others = [p for p in runs.glob("*_baseline") if p != run_dir and p.is_dir()]
    vs = "baseline" if name != "baseline" and others else run_dir.name
    return "\n".join(
        [
            "next:",
            f"  python -m kit.score {run_dir}    # per-class report and confusion",
            f"  python -m kit.runs {runs} --vs {vs}    # the ledger: what changed, what it scored",
            f"  python -m kit.ensemble {run_dir} OTHER_RUN -o ensemble.csv    # or kit.predict "
            f"{run_dir} --data-dir DIR for other pictures",
        ]
    )


def _fit_folds(
    cfg: Config,
    train_transform: A.BasicTransform | None,
    ctx: distributed.DistContext,
    device: torch.device,
    weights: Weights | None = None,
) -> Run:
    """Every fold of ``cfg.folds``, then the parent's files; rank 0 plans each fold (keep,
    resume, train) and alone writes the parent."""
    wanted, main = parse_folds(cfg.folds, cfg.n_folds), ctx.is_main
    distributed.setup_logging(cfg.quiet or not main)
    split = _split(cfg)  # reads and checks the data (and builds the fixture) before the parent
    parent = distributed.broadcast(
        open_folder(cfg, f"{cfg.name}_kfold", device, ctx, train_transform) if main else None,
        ctx,
    )
    runs: dict[int, Run] = {}
    _mark(ctx, parent, "running", 0)
    try:
        for k in wanted:
            plan = distributed.broadcast(find_fold_run(parent, k) if main else None, ctx)
            runs[k] = _fit_fold(cfg, parent, k, plan, train_transform, ctx, device, weights)
            _mark(ctx, parent, "running", len(runs))
        summary = None
        if main:
            dirs = {k: r.run_dir for k, r in runs.items()}
            summaries = {k: r.summary for k, r in runs.items()}
            pseudo = {k: v for k, v in summaries[wanted[0]].items() if k == PSEUDO_SUMMARY_KEY}
            summary = write_parent(parent, cfg.name, cfg.n_folds, dirs, summaries, split, pseudo)
        summary = distributed.broadcast(summary, ctx)
    except (KeyboardInterrupt, SystemExit):
        _mark(ctx, parent, "interrupted", len(runs))
        _log.warning("K-fold interrupted; continue with --resume %s", parent)
        raise
    except Exception as err:
        _mark(ctx, parent, "failed", len(runs), f"{type(err).__name__}: {err}")
        raise
    _mark(ctx, parent, "complete", len(runs))
    task, chosen = summary.get("task"), run_score(summary)
    what = "macro F1" if task is None else f"{task} F1"
    _log.info(
        f"K-fold done: out-of-fold {what} {chosen:.4f} (accuracy {summary['val_accuracy']:.4f}) "
        f"over folds {wanted} of {cfg.n_folds} -> {parent}"
    )
    folds = [runs[k] for k in wanted]
    return Run(parent, "complete", cfg, summary, chosen, 0, folds)


def _fit_fold(
    cfg: Config,
    parent: Path,
    k: int,
    plan: tuple[str, Path | None],
    train_transform: A.BasicTransform | None,
    ctx: distributed.DistContext,
    device: torch.device,
    weights: Weights | None = None,
) -> Run:
    """Fold ``k`` as :func:`kit.runfolder.find_fold_run` planned it: kept, resumed, or new."""
    action, found = plan
    if action == "keep" and found is not None:
        _log.info("fold %d: complete in %s; kept", k, found)
        return read_run(found)
    fold_cfg = cfg.replace(
        folds=None, fold=k, resume=None, output_dir=str(parent), name=f"{cfg.name}_fold{k}"
    )
    if action == "resume" and found is not None:
        _log.info("fold %d: resuming %s", k, found)
        fold_cfg = fold_cfg.replace(resume=str(found))
        check_resumable(fold_cfg, found)
    else:
        _log.info("fold %d of %d: training", k, cfg.n_folds)
    return fit_run(fold_cfg, train_transform, ctx, device, weights)


def _split(cfg: Config) -> pd.Series:
    """Fold of every training image under ``cfg``, indexed by ``image_id``."""
    splits = kit_splits.load_splits(cfg.replace(folds=None, fold=0))
    frame = pd.concat([splits.train, splits.val], ignore_index=True)
    return pd.Series(kit_splits.person_folds_of(frame, cfg), index=frame["image_id"])


def _mark(
    ctx: distributed.DistContext, parent: Path, status: str, done: int, error: str | None = None
) -> None:
    """The parent's status.json (``epoch`` counts the finished folds), from rank 0 only.

    A summary.json left by an earlier, smaller set of folds stays valid for its files, but the
    ledger reads its status first, so it is told when this resume stopped.
    """
    if not ctx.is_main:
        return
    rundir.write_status(parent, status, done, error)
    summary = rundir.read_summary(parent) if status in ("interrupted", "failed") else {}
    if summary and summary.get("status") != status:
        rundir.write_summary(parent, {**summary, "status": status})
