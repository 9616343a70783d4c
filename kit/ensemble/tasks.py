"""Per-task runs merged into 18 classes: a mask run, a gender run and an age run become one
18-way member through :func:`kit.labels.joint_from_heads` (independent product).

Each task's probabilities are the mean of its per-task runs. A task that no per-task run
covers is filled from the 18-way members' marginals (their mean), so a mask run can join two
18-way runs. The merged member then votes like any run (its weight counts once); it has
validation rows, and so an out-of-fold score, when every per-task run (and filler) predicted
the same validation images.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from kit.ensemble.inputs import Member, Split, align
from kit.labels import HEADS, heads_from_joint, joint_from_heads

__all__ = ["merge_heads", "merge_task_members"]


def merge_heads(task_probs: Mapping[str, Sequence[np.ndarray]]) -> np.ndarray:
    """``(n, 18)``: :func:`joint_from_heads` of each task's mean probabilities."""
    missing = [t for t in HEADS if not task_probs.get(t)]
    if missing:
        raise ValueError(f"no {' or '.join(missing)} probabilities to merge; expected every task")
    means = [np.mean(np.stack(task_probs[t]), axis=0) for t in HEADS]
    return joint_from_heads(*means)


def _merge_side(
    sources: list[Member], side: str, missing: list[str]
) -> tuple[Split | None, str | None]:
    splits = [getattr(m, side) for m in sources]
    if any(s is None for s in splits):
        lacking = [m.name for m, s in zip(sources, splits, strict=True) if s is None]
        return None, f"{lacking} have no {side} predictions"
    what = "validation" if side == "val" else "test"
    try:
        splits = align(splits, [m.name for m in sources], what)
    except ValueError as err:
        if side == "test":
            raise
        return None, str(err)
    by_task: dict[str, list[np.ndarray]] = {t: [] for t in HEADS}
    full = [s.probs for m, s in zip(sources, splits, strict=True) if m.kind not in HEADS]
    for m, s in zip(sources, splits, strict=True):
        if m.kind in HEADS:
            by_task[m.kind].append(s.probs)
    if missing:
        marginals = dict(zip(HEADS, heads_from_joint(np.mean(full, axis=0)), strict=True))
        for t in missing:
            by_task[t].append(marginals[t])
    probs = merge_heads(by_task)
    return Split(
        splits[0].ids, probs.argmax(axis=1), probs, splits[0].truth, splits[0].source
    ), None


def merge_task_members(members: Sequence[Member]) -> list[Member]:
    """``members`` with the per-task runs replaced by one merged 18-way member (placed where
    the first per-task run was); unchanged when there is none."""
    tasks = [m for m in members if m.kind in HEADS]
    if not tasks:
        return list(members)
    full = [m for m in members if m.has_probs]
    have = sorted({m.kind for m in tasks}, key=HEADS.index)
    missing = [t for t in HEADS if t not in have]
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
    rest = [m for m in members if m.kind not in HEADS]
    return [*rest[:first], merged, *rest[first:]]
