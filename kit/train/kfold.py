"""K-fold training: ``fit_folds(cfg) -> Run`` trains the folds named by ``cfg.folds``.

Layout: a parent folder ``<output_dir>/<ts>_<name>_kfold/`` holds one ordinary run folder per
fold, ``<ts>_<name>_fold<k>/``, beside the parent's own files (out-of-fold ``val_probs.csv``,
fold-averaged ``test_probs.csv``, CV ``summary.json``; see docs/run-folder.md). Every fold is
exactly ``fit(cfg)`` with ``fold = k``: same seed, same split as a lone ``--fold k`` run.

``cfg.resume = <parent>`` keeps the complete folds, resumes an interrupted one from its
``last.pt`` and trains the missing ones, then rewrites the parent's files.
"""

from __future__ import annotations

import logging
from pathlib import Path

import albumentations as A
import pandas as pd

from kit import io
from kit import runfolder as rundir
from kit.config import Config
from kit.inference import resolve_device
from kit.runfolder import Run, find_fold_run, read_run, write_parent
from kit.splits import person_folds
from kit.train import distributed
from kit.train.kfold_start import check_resume, open_parent
from kit.train.loaders import load_splits, resolve_data_dir
from kit.train.loop import fit
from kit.train.runtime import setup_logging

__all__ = ["check_folds", "fit_folds", "parse_folds"]

_log = logging.getLogger("kit")


def parse_folds(spec: str, n_folds: int) -> list[int]:
    """The sorted fold indices of ``spec``: ``"all"`` or a comma list such as ``"0,2"``."""
    expected = f"expected all or a comma list of fold indices in 0..{n_folds - 1}, e.g. 0,2"
    text = spec.strip().lower()
    if text == "all":
        return list(range(n_folds))
    parts = [p.strip() for p in text.split(",")]
    bad = next((p for p in parts if not (p.isascii() and p.isdigit())), None)
    if bad is not None:
        raise ValueError(
            f"config field 'folds' is {spec!r}: {bad!r} is not a fold index; {expected}"
        )
    folds = [int(p) for p in parts]
    beyond = [k for k in folds if k >= n_folds]
    if beyond:
        raise ValueError(
            f"config field 'folds' is {spec!r}: there is no fold {beyond[0]} with "
            f"n_folds = {n_folds}; {expected}"
        )
    twice = sorted({k for k in folds if folds.count(k) > 1})
    if twice:
        raise ValueError(f"config field 'folds' is {spec!r}: fold {twice[0]} is listed twice")
    return sorted(folds)


def check_folds(cfg: Config) -> None:
    """ValueError when ``cfg.folds`` is malformed or set together with ``cfg.fold``."""
    if cfg.folds is None:
        return
    parse_folds(cfg.folds, cfg.n_folds)
    if cfg.fold is not None:
        raise ValueError(
            f"config fields 'fold' ({cfg.fold}) and 'folds' ({cfg.folds!r}) are both set; "
            "expected one: fold k trains one run, folds trains a K-fold (use --fold none)"
        )


def fit_folds(cfg: Config, train_transform: A.BasicTransform | None = None) -> Run:
    """Train every fold of ``cfg.folds`` and write the K-fold parent folder; see the module.

    Under ``torchrun`` every process trains every fold together; rank 0 decides what each
    fold does (keep, resume, train) and alone writes the parent's files.
    """
    if cfg.folds is None:
        raise ValueError("fit_folds needs config field 'folds': all, or fold indices like 0,2")
    cfg = cfg.smoke_variant() if cfg.smoke else cfg
    cfg.validate()
    wanted = parse_folds(cfg.folds, cfg.n_folds)
    if cfg.resume:
        check_resume(cfg, Path(cfg.resume))
    ctx, device = distributed.init(resolve_device(cfg.device))
    try:
        return _fit_folds(cfg, wanted, train_transform, ctx, str(device))
    finally:
        distributed.teardown(ctx)


def _fit_folds(
    cfg: Config,
    wanted: list[int],
    train_transform: A.BasicTransform | None,
    ctx: distributed.DistContext,
    device: str,
) -> Run:
    main = ctx.is_main
    setup_logging(cfg.quiet or not main)
    parent = distributed.broadcast(open_parent(cfg, device, ctx) if main else None, ctx)
    runs: dict[int, Run] = {}
    _mark(ctx, parent, "running", 0)
    try:
        resolve_data_dir(cfg)  # the fixture, if any, is built once, before the first fold
        for k in wanted:
            plan = distributed.broadcast(find_fold_run(parent, k) if main else None, ctx)
            runs[k] = _fit_fold(cfg, parent, k, plan, train_transform)
            _mark(ctx, parent, "running", len(runs))
        summary = None
        if main:
            fold_dirs = {k: r.run_dir for k, r in runs.items()}
            fold_summaries = {k: r.summary for k, r in runs.items()}
            summary = write_parent(
                parent, cfg.name, cfg.n_folds, fold_dirs, fold_summaries, _split(cfg)
            )
        summary = distributed.broadcast(summary, ctx)
    except (KeyboardInterrupt, SystemExit):
        _mark(ctx, parent, "interrupted", len(runs))
        _log.warning("K-fold interrupted; continue with --resume %s", parent)
        raise
    except Exception as err:
        _mark(ctx, parent, "failed", len(runs), f"{type(err).__name__}: {err}")
        raise
    _mark(ctx, parent, "complete", len(runs))
    _log.info(
        "K-fold done: out-of-fold macro F1 %.4f (accuracy %.4f) over folds %s of %d -> %s",
        summary["val_macro_f1"], summary["val_accuracy"], wanted, cfg.n_folds, parent,
    )  # fmt: skip
    runs_list = [runs[k] for k in wanted]
    return Run(parent, "complete", cfg, summary, summary["val_macro_f1"], 0, runs_list)


def _fit_fold(
    cfg: Config,
    parent: Path,
    k: int,
    plan: tuple[str, Path | None],
    train_transform: A.BasicTransform | None,
) -> Run:
    """Fold ``k`` as :func:`find_fold_run` planned it: kept, resumed, or trained anew."""
    action, found = plan
    if action == "keep" and found is not None:
        _log.info("fold %d: complete in %s; kept", k, found)
        return read_run(found)
    fold_cfg = cfg.replace(
        folds=None, fold=k, resume=None, output_dir=str(parent), name=f"{cfg.name}_fold{k}"
    )
    if action == "resume" and found is not None:
        _log.info("fold %d: resuming %s", k, found)
        return fit(fold_cfg.replace(resume=str(found)), train_transform)
    _log.info("fold %d of %d: training", k, cfg.n_folds)
    return fit(fold_cfg, train_transform)


def _split(cfg: Config) -> pd.Series:
    """Fold of every training image under ``cfg``, indexed by ``image_id``."""
    data = load_splits(cfg.replace(folds=None, fold=0))
    frame = pd.concat([data.train, data.val], ignore_index=True)
    return pd.Series(person_folds(frame, cfg.n_folds, cfg.seed), index=frame["image_id"])


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
    summary_path = parent / "summary.json"
    if status in ("interrupted", "failed") and summary_path.is_file():
        summary = io.read_json(summary_path)
        if summary.get("status") != status:
            io.write_json(summary_path, {**summary, "status": status})
