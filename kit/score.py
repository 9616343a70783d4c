"""Score a run's validation or a submission: macro F1, accuracy, per-class report, confusion.

``python -m kit.score RUN_DIR [--mistakes]``: the run's (or K-fold parent's, out-of-fold) own
validation report from its val_probs.csv; ``--mistakes`` (re)draws its mistakes sheet. A
per-task run (mask, gender or age only) reports its task: macro F1 over the task's values,
per value, and the task's confusion.
``python -m kit.score submission.csv --answers data/eval/answers.csv [--png confusion.png]``:
a submission against answers, both ``ImageID,ans`` (the fixture's ``eval/answers.csv`` works as
is). The scores come first; the picture is optional and only warns when it cannot be written.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kit import cli
from kit.cli import add_debug_flag, error_text, run_cli
from kit.data.fixture import FIXTURE, SMOKE_FIXTURE
from kit.io import OutputError
from kit.labels import TASK_SIZES, VALUE_NAMES
from kit.metrics import per_class_f1, report, summarize, summarize_task, task_values
from kit.plot import confusion_png, mistakes_sheet, train_picture_files
from kit.runfolder import (
    SUBMISSION,
    VAL_CONFUSION,
    VAL_MISTAKES,
    VAL_PROBS,
    Split,
    read_config,
    read_predictions,
    read_submission,
    read_summary,
    read_task_predictions,
)

__all__ = ["format_confusion", "main", "score_submission"]

_PNG_FIX = "pass --png PATH to draw it elsewhere, or free space"


def _examples(ids: np.ndarray) -> str:
    shown = ", ".join(repr(str(i)) for i in ids[:3])
    return shown + (", ..." if len(ids) > 3 else "")


def _aligned(sub_path: Path, answers_path: Path) -> tuple[np.ndarray, np.ndarray, bool]:
    sub, ans = read_submission(sub_path), read_submission(answers_path)
    missing = np.setdiff1d(ans.ids.astype(str), sub.ids.astype(str))
    extra = np.setdiff1d(sub.ids.astype(str), ans.ids.astype(str))
    parts = [
        f"{len(ids)} ImageID(s) {what} ({_examples(ids)})"
        for ids, what in ((missing, "of the answers missing"), (extra, "not in the answers"))
        if len(ids)
    ]
    if parts:
        raise ValueError(
            f"{sub_path}: {'; '.join(parts)}; expected exactly the {len(ans.ids)} ImageIDs of "
            f"{answers_path}"
        )
    same_order = bool(np.array_equal(sub.ids, ans.ids))
    order = pd.Index(sub.ids).get_indexer(ans.ids)
    return ans.labels, sub.labels[order], same_order


def score_submission(
    sub_path: str | os.PathLike[str], answers_path: str | os.PathLike[str]
) -> dict[str, Any]:
    """Scores of a submission: ``kit.metrics.summarize`` plus n, per_class_f1, same_order.

    Rows are matched by ImageID; ``same_order`` says whether they were also in the answers'
    row order (the leaderboard expects info.csv order).
    """
    return _scores(*_aligned(Path(sub_path), Path(answers_path)))


def _scores(truth: np.ndarray, pred: np.ndarray, same_order: bool) -> dict[str, Any]:
    scores = summarize(truth, pred)
    scores.update(
        n=len(truth), per_class_f1=per_class_f1(truth, pred).tolist(), same_order=same_order
    )
    return scores


def format_confusion(confusion: Sequence[Sequence[int]]) -> str:
    """The confusion matrix as text: rows true, columns predicted, ids on both axes (18
    classes, or the values of one task)."""
    cm = np.asarray(confusion)
    width = max(4, len(str(cm.max())) + 1)
    head = "true\\pred" + "".join(f"{j:>{width}}" for j in range(len(cm)))
    rows = [f"{i:>9}" + "".join(f"{v:>{width}}" for v in cm[i]) for i in range(len(cm))]
    return "\n".join([head, *rows]) + "\n"


@dataclass(frozen=True)
class _Target:
    """What is scored: 18-way truth and predictions (a per-task run's: its task's values)."""

    title: str
    truth: np.ndarray
    pred: np.ndarray
    same_order: bool
    png: Path  # where the confusion picture goes by default
    task: str | None = None  # a per-task run's task


def _run_target(path: Path, args: argparse.Namespace) -> _Target:
    """A run folder's (or K-fold parent's) own validation rows, 18-way or per-task; with
    ``--mistakes``, its mistakes sheet is drawn first."""
    per_task = read_task_predictions(path)
    task, val = (None, read_predictions(path)[0]) if per_task is None else per_task[:2]
    if val is None:  # read_predictions has explained a run with neither file
        raise FileNotFoundError(
            f"{path}: no {VAL_PROBS}; expected a run folder that finished validation "
            "(or pass a submission CSV with --answers)"
        )
    folds = read_summary(path).get("folds")
    what = f"out-of-fold over {len(folds)} folds" if folds else "validation"
    if task is not None:
        if args.mistakes:  # the sheet captions 18-way classes, which this run never predicts
            raise ValueError(
                f"{path}: --mistakes draws 18-way mistakes, but this is a per-task ({task}) "
                f"run; list its doubtful {task} labels with python -m kit.runs suspects {path}"
            )
        what = f"{task} only, {what}"
    elif args.mistakes:
        _mistakes(path, val, args.data_dir)
    return _Target(f"{path.name} ({what})", val.truth, val.labels, True, path / VAL_CONFUSION, task)


def _target(args: argparse.Namespace) -> _Target:
    """What to score: a run's own validation rows, or a submission against answers."""
    path = Path(args.target)
    if path.is_dir() and args.answers is None:  # a run's own validation report
        return _run_target(path, args)
    if args.mistakes:
        raise ValueError(
            f"{path}: --mistakes draws a run folder's validation mistakes; give a run folder "
            "(without --answers)"
        )
    if args.answers is None:
        raise ValueError(
            f"{path}: a submission CSV is scored against answers; pass --answers "
            "eval/answers.csv (or give a run folder for its validation report)"
        )
    sub = path / SUBMISSION if path.is_dir() else path
    truth, pred, same_order = _aligned(sub, Path(args.answers))
    return _Target(sub.name, truth, pred, same_order, sub.with_name(f"{sub.stem}_confusion.png"))


def _parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(prog="python -m kit.score", description=__doc__.splitlines()[0])
    p.add_argument(
        "target",
        help="a run folder or K-fold parent (its validation report from val_probs.csv), "
        "or a submission CSV (ImageID,ans) with --answers",
    )
    p.add_argument("--answers", help="answers CSV (ImageID,ans), e.g. eval/answers.csv")
    p.add_argument(
        "--png",
        help="confusion picture (default: <submission>_confusion.png beside a submission, "
        f"{VAL_CONFUSION} in a run folder)",
    )
    p.add_argument(
        "--mistakes",
        action="store_true",
        help=f"also draw a run folder's mistakes sheet ({VAL_MISTAKES} in it): the most "
        "confident wrong validation predictions",
    )
    p.add_argument(
        "--data-dir", help="where the run's pictures are, for --mistakes (default: the run's)"
    )
    add_debug_flag(p)
    return p


def _mistakes(run: Path, val: Split, data_dir: str | None) -> None:
    """The mistakes sheet of ``run``'s validation rows, pictures from ``data_dir`` or the
    data the run trained on (its fixture when it had none)."""
    config = read_config(run)
    fixture = (SMOKE_FIXTURE if config.get("smoke") else FIXTURE)[0]
    files = train_picture_files(data_dir or config.get("data_dir") or fixture)
    if not files:
        raise FileNotFoundError(
            f"no training pictures found for {run}'s mistakes sheet; pass --data-dir DIR "
            "(the data folder the run trained on)"
        )
    pictures = [files.get(str(i)) for i in val.ids]
    title = f"{run.name}: most confident mistakes"
    out = mistakes_sheet(pictures, val.truth, val.probs, run / VAL_MISTAKES, title=title)
    print(f"wrote {out}")


def _picture(
    confusion: list[list[int]], png: Path, title: str, names: Sequence[str] | None = None
) -> None:
    """The optional picture: a folder it cannot be written to only warns."""
    try:
        confusion_png(confusion, png, class_names=names, title=title)
    except OSError as err:
        if isinstance(err, OutputError):
            err = err.with_fix(_PNG_FIX)
        print(f"warning: no confusion picture: {error_text(err)}", file=sys.stderr)
        return
    print(f"wrote {png}")


def _task_report(task: str, y_true: np.ndarray, y_pred: np.ndarray) -> str:
    """Per-value precision / recall / F1 / support of a per-task run (``y_true`` 18-way class
    ids, ``y_pred`` the task's values): scikit-learn's report, whose macro avg F1 is the
    task's macro F1."""
    from sklearn.metrics import classification_report  # seconds: only for the report

    return classification_report(
        task_values(task, y_true),
        y_pred,
        labels=range(TASK_SIZES[task]),
        target_names=VALUE_NAMES[task],
        digits=4,
        zero_division=0,
    )


def _main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    t = _target(args)
    png = Path(args.png) if args.png else t.png
    if t.task is None:
        s, label, names = _scores(t.truth, t.pred, t.same_order), "macro F1", None
        text = report(t.truth, t.pred)
    else:  # its task's macro F1: the score the run kept its best checkpoint by
        s = {**summarize_task(t.task, t.truth, t.pred), "n": len(t.truth), "same_order": True}
        s["macro_f1"], label, names = s[f"f1_{t.task}"], f"{t.task} macro F1", VALUE_NAMES[t.task]
        text = _task_report(t.task, t.truth, t.pred)
    print(f"{t.title}\n")
    print(f"{label}  {s['macro_f1']:.4f}   accuracy  {s['accuracy']:.4f}   (n = {s['n']})\n")
    print(text)
    print(format_confusion(s["confusion"]))
    if not s["same_order"]:
        print("WARNING: rows are not in the answers' order; the leaderboard expects info.csv order")
    headline = f"{label} {s['macro_f1']:.4f}, accuracy {s['accuracy']:.4f}, n {s['n']}"
    _picture(s["confusion"], png, f"{t.title}: {headline}", names)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Print the scores, then write the confusion PNG; exit code 2 on bad input."""
    return run_cli(_main, argv, output_fix=_PNG_FIX)


if __name__ == "__main__":
    sys.exit(main())
