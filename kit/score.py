"""Score a submission against answers: macro F1, accuracy, per-class report, confusion picture.

``python -m kit.score submission.csv --answers data/eval/answers.csv [--png confusion.png]``
Both files are ``ImageID,ans`` (the fixture's ``eval/answers.csv`` works as is).
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

from kit.labels import NUM_CLASSES
from kit.metrics import per_class_f1, report, summarize
from kit.plot import confusion_png
from kit.runfolder import read_submission

__all__ = ["format_confusion", "main", "score_submission"]


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


def main(argv: Sequence[str] | None = None) -> int:
    """Print the scores and write the confusion PNG; exit code 2 on bad input."""
    p = argparse.ArgumentParser(prog="python -m kit.score", description=__doc__.splitlines()[0])
    p.add_argument("submission", help="submission CSV (ImageID,ans)")
    p.add_argument(
        "--answers", required=True, help="answers CSV (ImageID,ans), e.g. eval/answers.csv"
    )
    p.add_argument("--png", help="confusion picture (default: <submission>_confusion.png)")
    args = p.parse_args(argv)
    sub = Path(args.submission)
    png = Path(args.png) if args.png else sub.with_name(f"{sub.stem}_confusion.png")
    try:
        truth, pred, same_order = _aligned(sub, Path(args.answers))
        s = _scores(truth, pred, same_order)
        title = (
            f"{sub.name}: macro F1 {s['macro_f1']:.4f}, accuracy {s['accuracy']:.4f}, n {s['n']}"
        )
        confusion_png(s["confusion"], png, title=title)
    except (ValueError, FileNotFoundError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"macro F1  {s['macro_f1']:.4f}   accuracy  {s['accuracy']:.4f}   (n = {s['n']})\n")
    print(report(truth, pred))
    print(format_confusion(s["confusion"]))
    if not s["same_order"]:
        print("WARNING: rows are not in the answers' order; the leaderboard expects info.csv order")
    print(f"wrote {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
