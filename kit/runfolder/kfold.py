"""The K-fold parent folder (docs/run-folder.md): its fold runs, and the files merged from them.

``val_probs.csv`` is the out-of-fold table: every image of the trained folds, predicted once by
the fold model that did not train on it. ``test_probs.csv`` is the mean of the fold models'
test probabilities. The scores in ``summary.json`` are computed on the whole out-of-fold table,
not averaged over folds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kit.io import csv_source
from kit.metrics import summarize, summarize_task
from kit.runfolder.names import (
    CONFIG,
    LAST,
    PROB_COLUMNS,
    SUBMISSION,
    TEST_KEYS,
    TEST_PROBS,
    VAL_KEYS,
    VAL_PROBS,
    prob_columns,
)
from kit.runfolder.read import is_complete, probs_task, read_config
from kit.runfolder.write import write_run_probs, write_submission, write_summary

__all__ = ["find_fold_run", "mean_test_probs", "merge_oof", "write_parent"]


def find_fold_run(parent: Path, k: int) -> tuple[str, Path | None]:
    """What to do with fold ``k`` of ``parent``: ``("keep", newest complete run)``, else
    ``("resume", newest run with a last.pt)``, else ``("new", None)``. A fold folder left
    without ``last.pt`` (stopped in its first epoch) is passed over: nothing to resume."""
    mine = [
        d
        for d in sorted(parent.iterdir(), reverse=True)  # newest first: names start with time
        if d.is_dir()
        and not d.name.startswith(".")
        and (d / CONFIG).is_file()
        and read_config(d).get("fold") == k
    ]
    complete = [d for d in mine if is_complete(d)]
    if complete:
        return "keep", complete[0]
    resumable = [d for d in mine if (d / LAST).is_file()]
    return ("resume", resumable[0]) if resumable else ("new", None)


def _read(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; a finished fold run writes it")
    ids = {c: str for c in ("image_id", "person_id")}
    return pd.read_csv(**csv_source(path), dtype=ids, keep_default_na=False)


def merge_oof(fold_dirs: dict[int, Path], expected_fold: pd.Series) -> pd.DataFrame:
    """The fold runs' ``val_probs.csv`` stacked in fold order, checked against the split.

    ``expected_fold`` maps every training ``image_id`` to its fold under the parent's config.
    A row in two folds, or in a fold other than the split's, raises ValueError naming the run.
    """
    parts = []
    for k, run_dir in sorted(fold_dirs.items()):
        part = _read(run_dir / VAL_PROBS)
        wrong = part["fold"].to_numpy() != k
        wrong |= expected_fold.reindex(part["image_id"]).to_numpy() != k
        if wrong.any():
            image = part["image_id"].iloc[int(np.flatnonzero(wrong)[0])]
            found = expected_fold.get(image)
            found = "no fold (not in this data)" if found is None else f"fold {found}"
            raise ValueError(
                f"{run_dir / VAL_PROBS}: image {image!r} is in fold {k}'s validation rows "
                f"but this config's split puts it in {found}; expected the fold run to share "
                "the parent's data_dir, fixes, limit_people, n_folds and seed"
            )
        parts.append(part)
    oof = pd.concat(parts, ignore_index=True)
    twice = oof["image_id"].duplicated()
    if twice.any():
        raise ValueError(f"image {oof['image_id'][twice].iloc[0]!r} is predicted by two folds")
    return oof


def mean_test_probs(
    fold_dirs: dict[int, Path], columns: list[str] = PROB_COLUMNS
) -> pd.DataFrame | None:
    """``image_id,p0..p17`` (or a per-task run's ``columns``): the mean of the fold runs' test
    probabilities (None without any)."""
    paths = {k: d / TEST_PROBS for k, d in sorted(fold_dirs.items())}
    present = [k for k, p in paths.items() if p.is_file()]
    if not present:
        return None
    if len(present) != len(paths):
        missing = [str(p) for k, p in paths.items() if k not in present]
        raise FileNotFoundError(f"{missing} not found while other folds have {TEST_PROBS}")
    tables = [_read(p) for p in paths.values()]
    ids = tables[0]["image_id"]
    for path, table in zip(paths.values(), tables, strict=True):
        if not table["image_id"].equals(ids):
            raise ValueError(
                f"{path}: test rows differ from {paths[present[0]]}; expected every fold "
                "predicted on the same eval set in the same (info.csv) order"
            )
    mean = np.mean([t[columns].to_numpy(np.float64) for t in tables], axis=0)
    return pd.concat([ids, pd.DataFrame(mean, columns=columns)], axis=1)


def write_parent(
    parent: Path,
    name: str,
    n_folds: int,
    fold_dirs: dict[int, Path],
    fold_summaries: dict[int, dict[str, Any]],
    expected_fold: pd.Series,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the parent's val_probs, test_probs, submission and summary (with the ``extra``
    keys, e.g. the fold runs' ``pseudo`` record); return the summary.

    Fold runs of a per-task head give a per-task parent: its task's columns, task scores
    (:func:`kit.metrics.summarize_task`) and no submission."""
    t0 = time.time()
    task = probs_task(fold_dirs[min(fold_dirs)] / VAL_PROBS)
    columns = prob_columns(task)
    oof = merge_oof(fold_dirs, expected_fold)
    probs = oof[columns].to_numpy(np.float64)
    write_run_probs(parent / VAL_PROBS, oof[list(VAL_KEYS)], probs, task)
    test = mean_test_probs(fold_dirs, columns)
    if test is not None:
        test_probs = test[columns].to_numpy()
        write_run_probs(parent / TEST_PROBS, test[list(TEST_KEYS)], test_probs, task)
        if task is None:
            write_submission(test_probs, test[list(TEST_KEYS)], parent / SUBMISSION)
    truth, pred = oof["label"].to_numpy(), probs.argmax(1)
    scores = summarize(truth, pred) if task is None else summarize_task(task, truth, pred)
    trained = sorted(fold_dirs)
    summaries = [fold_summaries[k] for k in trained]
    summary = {
        "name": name,
        "status": "complete",
        "best_epoch": None,  # each fold has its own; see "folds"
        "epochs_run": sum(int(s.get("epochs_run", 0)) for s in summaries),
        **{f"val_{k}": v for k, v in scores.items() if k != "confusion"},
        "confusion": scores["confusion"],
        "n_val": len(oof),
        "submission_weights": "folds",  # the mean of the fold runs' test probabilities
        "seconds": round(sum(float(s.get("seconds", 0)) for s in summaries) + time.time() - t0, 3),
        "n_folds": n_folds,
        "folds": [
            {
                "fold": k,
                "run_dir": fold_dirs[k].name,  # relative to the parent, so copies keep working
                "val_macro_f1": fold_summaries[k].get("val_macro_f1"),
                "best_epoch": fold_summaries[k].get("best_epoch"),
                "n_val": fold_summaries[k].get("n_val"),
            }
            for k in trained
        ],
        "cv_note": (
            f"out-of-fold scores cover folds {trained} of {n_folds} only (a subset of the "
            "training images)"
            if len(trained) < n_folds
            else None
        ),
        **({} if task is None else {"task": task}),
        **(extra or {}),
    }
    write_summary(parent, summary)
    return summary
