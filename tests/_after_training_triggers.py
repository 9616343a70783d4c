"""Triggers of the messages of calibration, stacking, per-task merging, pseudo-labels and the
label-noise finder, for tests/test_troubleshooting.py (kept apart so that file's registry stays
short)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kit.data import read_eval
from kit.ensemble import calibrate, combine, fit_biases, fit_stacker
from kit.ensemble.inputs import merge_heads
from kit.runfolder import read_val_keys, write_task_probs, write_test_probs
from kit.runs.__main__ import main as runs_main
from kit.splits import load_splits
from kit.train import fit
from tests._runfolders import Preds, RunSpec, one_hot_probs, summary, write_run
from tests._triggers import logged, printed, raised

N = 36
Y = np.arange(N) % 18
P = one_hot_probs(Y, 0.5)


def _run(tmp: Path, name: str, prefix: str = "p") -> Path:
    ids = [f"{prefix}{i // 3}/img{i % 3}" for i in range(N)]
    test = [f"{i:040x}.jpg" for i in range(6)]
    preds = Preds(ids, Y, P, test, one_hot_probs(Y[:6]), folds=[(i // 3) % 2 for i in range(N)])
    return write_run(tmp, RunSpec(name=name, summary=summary(0.5), preds=preds))


def _eval_probs(c: Any, ids: list[str] | None = None) -> Path:
    """A loose test_probs.csv-shaped file of the trigger layout's eval pictures (or ``ids``)."""
    ids = list(read_eval(c.data())["image_id"]) if ids is None else ids
    return write_test_probs(c.tmp / "stage1.csv", ids, np.full((len(ids), 18), 1 / 18))


def _no_eval(c: Any) -> str:
    source = _eval_probs(c)
    (c.data() / "eval" / "info.csv").unlink()
    return raised(lambda: load_splits(c.cfg(pseudo_labels=str(source))))


AFTER_TRAINING: dict[str, Callable[[Any], str]] = {
    "pseudo-targets-unknown": lambda c: raised(lambda: fit(c.cfg(pseudo_targets="sofft"))),
    "pseudo-no-eval": _no_eval,
    "pseudo-none-passed": lambda c: logged(
        lambda: load_splits(c.cfg(pseudo_labels=str(_eval_probs(c)), pseudo_threshold=0.5))
    ),
    "calibrate-shape": lambda c: raised(lambda: fit_biases(P[:, :3], Y)),
    "honest-one-person": lambda c: raised(lambda: calibrate(P, Y, groups=["001"] * N)),
    "honest-no-groups": lambda c: raised(lambda: calibrate(P, Y)),
    "stack-combine": lambda c: raised(lambda: combine("stack", [P])),
    "stack-members": lambda c: raised(
        lambda: fit_stacker([P, P], Y, np.arange(N) % 2).predict([P])
    ),
    "stack-lengths": lambda c: raised(lambda: fit_stacker([P], Y[:-1], np.arange(N) % 2)),
    "val-keys-missing": lambda c: raised(
        lambda: read_val_keys(_run(c.tmp, "a")).take(np.array(["nope/img0"], dtype=object))
    ),
    "merge-heads-missing": lambda c: raised(
        lambda: merge_heads({"mask": [np.full((2, 3), 1 / 3)], "gender": [np.ones((2, 2)) / 2]})
    ),
    "task-probs-shape": lambda c: raised(
        lambda: write_task_probs(c.tmp / "v.csv", pd.DataFrame(), np.ones((2, 3)), "gender")
    ),
    "suspects-top": lambda c: printed(runs_main, ["suspects", str(_run(c.tmp, "a")), "--top", "0"]),
}
