"""Score a run's validation or a submission: macro F1, accuracy, per-class report, confusion.

``python -m kit.score RUN_DIR [--mistakes]``: the run's (or K-fold parent's, out-of-fold) own
validation report from its val_probs.csv; ``--mistakes`` (re)draws its mistakes sheet.
``python -m kit.score submission.csv --answers data/eval/answers.csv [--png confusion.png]``:
a submission against answers, both ``ImageID,ans`` (the fixture's ``eval/answers.csv`` works as
is). The scores come first; the picture is optional and only warns when it cannot be written.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kit import cli
from kit.cli import add_debug_flag, error_text, run_cli
from kit.data.fixture import FIXTURE, SMOKE_FIXTURE
from kit.io import OutputError
from kit.labels import NUM_CLASSES
from kit.metrics import per_class_f1, report, summarize
from kit.plot import confusion_png
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
)
from kit.sheets import mistakes_sheet, train_picture_files

__all__ = ["format_confusion", "main", "score_submission"]

_PNG_FIX = "pass --png PATH to draw it elsewhere, or free space"


def _examples(ids: np.ndarray) -> str:
    shown = ", ".join(repr(str(i)) for i in ids[:3])
    return shown + (", ..." if len(ids) > 3 else "")


def _aligned(sub_path: Path, answers_path: Path) -> tuple[np.ndarray, np.ndarray, bool]:
    sub, ans = read_submission(sub_path), read_submission(answers_path)
    missing = np.setdiff1d(ans.ids.astype(str), sub.ids.astype(str))
    extra = np.setdiff1d(sub.ids.astype(str), ans.ids.astype(str))
    if len(missing) or len(extra):
        parts = []
        if len(missing):
            parts.append(f"{len(missing)} ImageID(s) of the answers missing ({_examples(missing)})")
        if len(extra):
            parts.append(f"{len(extra)} ImageID(s) not in the answers ({_examples(extra)})")
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
    """The confusion matrix as text: rows true, columns predicted, ids on both axes."""
    cm = np.asarray(confusion)
    width = max(4, len(str(cm.max())) + 1)
    head = "true\\pred" + "".join(f"{j:>{width}}" for j in range(NUM_CLASSES))
    rows = [f"{i:>9}" + "".join(f"{v:>{width}}" for v in cm[i]) for i in range(NUM_CLASSES)]
    return "\n".join([head, *rows]) + "\n"


def _target(args: argparse.Namespace) -> tuple[str, np.ndarray, np.ndarray, bool, Path]:
    """What to score: (title, truth, predictions, same order, default picture path); with
    ``--mistakes``, a run folder's mistakes sheet is drawn first."""
    path = Path(args.target)
    if path.is_dir() and args.answers is None:  # a run's own validation report
        val, _ = read_predictions(path)  # explains a run that has not finished
        if val is None:
            raise FileNotFoundError(
                f"{path}: no {VAL_PROBS}; expected a run folder that finished validation "
                "(or pass a submission CSV with --answers)"
            )
        folds = read_summary(path).get("folds")
        what = f"out-of-fold over {len(folds)} folds" if folds else "validation"
        if args.mistakes:
            _mistakes(path, val, args.data_dir)
        return f"{path.name} ({what})", val.truth, val.labels, True, path / VAL_CONFUSION
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
    return sub.name, truth, pred, same_order, sub.with_name(f"{sub.stem}_confusion.png")


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


def _picture(confusion: list[list[int]], png: Path, title: str) -> None:
    """The optional picture: a folder it cannot be written to only warns."""
    try:
        confusion_png(confusion, png, title=title)
    except OSError as err:
        if isinstance(err, OutputError):
            err = err.with_fix(_PNG_FIX)
        print(f"warning: no confusion picture: {error_text(err)}", file=sys.stderr)
        return
    print(f"wrote {png}")


def _main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    title, truth, pred, same_order, default_png = _target(args)
    png = Path(args.png) if args.png else default_png
    s = _scores(truth, pred, same_order)
    print(f"{title}\n")
    print(f"macro F1  {s['macro_f1']:.4f}   accuracy  {s['accuracy']:.4f}   (n = {s['n']})\n")
    print(report(truth, pred))
    print(format_confusion(s["confusion"]))
    if not s["same_order"]:
        print("WARNING: rows are not in the answers' order; the leaderboard expects info.csv order")
    headline = f"macro F1 {s['macro_f1']:.4f}, accuracy {s['accuracy']:.4f}, n {s['n']}"
    _picture(s["confusion"], png, f"{title}: {headline}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Print the scores, then write the confusion PNG; exit code 2 on bad input."""
    return run_cli(_main, argv, output_fix=_PNG_FIX)


if __name__ == "__main__":
    sys.exit(main())
