"""What an ensemble reads: its members (run folders, K-fold parents, submission CSVs) with
their rows aligned, per-task runs merged into one 18-way member, and honest folds
(docs/ensembling.md, Members and Per-task runs).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kit.labels import TASKS, heads_from_joint, joint_from_heads
from kit.runfolder import (
    Split,
    read_predictions,
    read_submission,
    read_task_predictions,
    read_val_keys,
)

__all__ = [
    "HonestFolds",
    "Member",
    "align",
    "aligned",
    "honest_folds",
    "load_member",
    "member_folds",
    "merge_heads",
    "merge_task_members",
]


@dataclass
class Member:
    """An ensemble member: a run folder or a submission CSV."""

    name: str
    path: Path
    #: "run", "submission", the task of a per-task run ("mask", "gender", "age"), or
    #: "per-task" (mask, gender and age runs merged by merge_task_members)
    kind: str
    val: Split | None
    test: Split | None

    @property
    def has_probs(self) -> bool:
        """18-way probabilities (not a submission CSV, not a per-task run)."""
        return self.kind in ("run", "per-task")


def _load_run(path: Path) -> Member:
    per_task = read_task_predictions(path)  # a per-task run: merged by merge_task_members
    if per_task is not None:
        task, val, test = per_task
        return Member(path.name, path, task, val, test)
    return Member(path.name, path, "run", *read_predictions(path))


def load_member(path: str | Path) -> Member:
    """A member from a run folder, a K-fold parent folder or a submission CSV."""
    path = Path(path)
    if path.is_dir():
        return _load_run(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; expected a run folder or a submission CSV")
    return Member(
        f"{path.parent.name}/{path.name}", path, "submission", None, read_submission(path)
    )


def align(splits: Sequence[Split], names: Sequence[str], what: str) -> list[Split]:
    """Reorder every split to the first one's row order; refuse different sets of rows."""
    ref = splits[0]
    out = [ref]
    for name, split in zip(names[1:], splits[1:], strict=True):
        if len(split.ids) == len(ref.ids) and np.array_equal(split.ids, ref.ids):
            out.append(split)
            continue
        only_here = np.setdiff1d(split.ids.astype(str), ref.ids.astype(str))
        only_ref = np.setdiff1d(ref.ids.astype(str), split.ids.astype(str))
        if len(only_here) or len(only_ref):
            example = str(only_here[0] if len(only_here) else only_ref[0])
            side = name if len(only_here) else names[0]
            raise ValueError(
                f"{what} rows differ between {names[0]} ({len(ref.ids)} rows) and {name} "
                f"({len(split.ids)} rows): {len(only_ref)} only in {names[0]}, "
                f"{len(only_here)} only in {name}, e.g. {example!r} (in {side}). "
                "Expected members predicted on the same images (same folds / eval set)."
            )
        out.append(split.take(pd.Index(split.ids).get_indexer(ref.ids)))
    return out


def merge_heads(task_probs: Mapping[str, Sequence[np.ndarray]]) -> np.ndarray:
    """``(n, 18)``: :func:`joint_from_heads` of each task's mean probabilities."""
    missing = [t for t in TASKS if not task_probs.get(t)]
    if missing:
        raise ValueError(f"no {' or '.join(missing)} probabilities to merge; expected every task")
    means = [np.mean(np.stack(task_probs[t]), axis=0) for t in TASKS]
    return joint_from_heads(*means)


def aligned(members: Sequence[Member], side: str) -> tuple[list[Split] | None, str | None]:
    """The members' ``side`` ("val" or "test") splits in the first one's row order, or None and
    why (a member lacks them; validation rows differ). Differing test rows are refused."""
    what = "validation" if side == "val" else "test"
    lacking = [m.name for m in members if getattr(m, side) is None]
    if lacking:
        return None, f"{lacking} have no {what} predictions"
    try:
        return align([getattr(m, side) for m in members], [m.name for m in members], what), None
    except ValueError as err:  # e.g. runs with different splits: fine for test, no val score
        if side == "test":
            raise
        return None, str(err)


def _merge_side(
    sources: list[Member], side: str, missing: list[str]
) -> tuple[Split | None, str | None]:
    splits, why = aligned(sources, side)
    if splits is None:
        return None, why
    by_task: dict[str, list[np.ndarray]] = {t: [] for t in TASKS}
    full = [s.probs for m, s in zip(sources, splits, strict=True) if m.kind not in TASKS]
    for m, s in zip(sources, splits, strict=True):
        if m.kind in TASKS:
            by_task[m.kind].append(s.probs)
    if missing:
        marginals = dict(zip(TASKS, heads_from_joint(np.mean(full, axis=0)), strict=True))
        for t in missing:
            by_task[t].append(marginals[t])
    probs = merge_heads(by_task)
    return Split(
        splits[0].ids, probs.argmax(axis=1), probs, splits[0].truth, splits[0].source
    ), None


def merge_task_members(members: Sequence[Member]) -> list[Member]:
    """``members`` with the per-task runs replaced by one merged 18-way member (placed where
    the first per-task run was); unchanged when there is none."""
    tasks = [m for m in members if m.kind in TASKS]
    if not tasks:
        return list(members)
    full = [m for m in members if m.has_probs]
    have = sorted({m.kind for m in tasks}, key=TASKS.index)
    missing = [t for t in TASKS if t not in have]
    if missing and not full:
        raise ValueError(
            f"per-task runs give {', '.join(have)} but no {', '.join(missing)} probabilities; "
            f"add a per-task {missing[0]} run, or an 18-way run whose marginals fill the gap"
        )
    sources = tasks + (full if missing else [])
    val, why = _merge_side(sources, "val", missing)
    if why is not None and all(m.val is not None for m in sources):
        warnings.warn(f"per-task runs: no out-of-fold score for the merge: {why}", stacklevel=3)
    test, _ = _merge_side(sources, "test", missing)
    name = "per-task(" + " + ".join(m.name for m in tasks) + ")"
    merged = Member(name, tasks[0].path, "per-task", val, test)
    first = members.index(tasks[0])
    rest = [m for m in members if m.kind not in TASKS]
    return [*rest[:first], merged, *rest[first:]]


@dataclass(frozen=True)
class HonestFolds:
    """One fold id per row and where the folds came from ("fold column" / "person groups")."""

    ids: np.ndarray
    source: str

    @property
    def n_folds(self) -> int:
        return len(np.unique(self.ids))


def honest_folds(
    folds: Sequence[int] | np.ndarray | None,
    groups: Sequence[str] | np.ndarray | None,
    n_splits: int = 5,
) -> HonestFolds:
    """The given folds when they hold two or more, else ``n_splits`` person-grouped folds."""
    if folds is not None and len(np.unique(folds)) >= 2:
        return HonestFolds(np.asarray(folds), "fold column")
    if groups is None:
        raise ValueError(
            "cannot estimate honestly: the validation rows hold one fold and no person ids; "
            "expected a fold column with two or more folds, or person ids"
        )
    groups = np.asarray(groups)
    people = len(np.unique(groups))
    if people < 2:
        raise ValueError(
            f"cannot estimate honestly: the validation rows hold {people} person; expected at "
            "least 2 people (or two folds) to fit on some and score on the others"
        )
    out = np.empty(len(groups), dtype=np.int64)
    from sklearn.model_selection import GroupKFold  # seconds to import: only when folds are made

    split = GroupKFold(n_splits=min(n_splits, people))
    for k, (_, held) in enumerate(split.split(np.zeros(len(groups)), groups=groups)):
        out[held] = k
    return HonestFolds(out, "person groups")


def member_folds(run_dir: str | Path, val_ids: np.ndarray, n_splits: int = 5) -> HonestFolds:
    """Honest folds of the validation rows ``val_ids``, from ``run_dir``'s val_probs.csv."""
    keys = read_val_keys(run_dir).take(val_ids)
    return honest_folds(keys.folds, keys.person_ids, n_splits)
