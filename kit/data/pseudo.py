"""Pseudo-labels: a stage-2 run also trains on the eval pictures that a finished run (or the
mean of several) predicts confidently, under their predicted class (``hard``) or stage 1's
probabilities (``soft``, columns ``p0..p17``: :func:`soft_targets`), ``cfg.pseudo_targets``.

Only the training rows grow: the split is made from train.csv before these rows exist, so a
stage-2 run's validation score is as honest as stage 1's. The rows and their source are written
to the run folder (``pseudo_labels.csv``, ``summary.json``'s ``pseudo``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kit.labels import AgeGroup, decode
from kit.registry import Registry
from kit.runfolder import (
    PROB_COLUMNS,
    probs_task,
    pseudo_probs_file,
    pseudo_record,
    read_test_probs,
)

__all__ = [
    "GROUP_AGES",
    "PSEUDO_TARGETS",
    "PseudoLabels",
    "check_pseudo_sources",
    "load_pseudo_labels",
    "soft_targets",
]

_log = logging.getLogger("kit")
#: The age a pseudo row carries for its predicted age group: any training age thresholds with
#: 20 < low <= 45 < high <= 60 keep the group.
GROUP_AGES = {AgeGroup.YOUNG: 20, AgeGroup.MIDDLE: 45, AgeGroup.OLD: 60}


#: ``cfg.pseudo_targets`` -> ``targets(stage-1 probabilities (m, 18) of the kept rows)``: None
#: (they train on their predicted class) or their soft targets (m, 18).
PSEUDO_TARGETS: Registry[Callable[[np.ndarray], np.ndarray | None]] = Registry("pseudo_targets")


@PSEUDO_TARGETS.register("hard")
def _hard(probs: np.ndarray) -> None:
    return None


@PSEUDO_TARGETS.register("soft")
def _soft(probs: np.ndarray) -> np.ndarray:
    """Stage 1's probabilities, rows renormalised (a mean of sources, or rounded CSV values)."""
    return probs / probs.sum(axis=1, keepdims=True)


def soft_targets(df: pd.DataFrame) -> np.ndarray | None:
    """``(n, 18)`` soft targets of training rows ``df`` (NaN for labelled rows), or None when
    no row has any."""
    if not all(c in df.columns for c in PROB_COLUMNS):
        return None
    return df[PROB_COLUMNS].to_numpy(dtype=np.float32, na_value=np.nan)


@dataclass(frozen=True)
class PseudoLabels:
    """The pseudo-labelled training rows of a run and the record of where they came from."""

    # image_id, path, person_id, mask, gender, age, age_group, label, p_top (soft: p0..p17)
    rows: pd.DataFrame
    record: dict[str, Any]  # summary.json's "pseudo" entry


Sources = str | Sequence[str] | None


def check_pseudo_sources(sources: Sources) -> list[tuple[Path, Path | None]]:
    """The (probability file, run folder) of every source (``Config.pseudo_labels``), checked
    to be there and 18-way before any run folder is written."""
    found = []
    names = [] if sources is None else [sources] if isinstance(sources, str) else list(sources)
    for source in names:
        path, run = pseudo_probs_file(source)
        task = probs_task(path)
        if task is not None:
            raise ValueError(
                f"pseudo_labels: {path} holds {task} probabilities only (a per-task run); "
                "pseudo-labels need 18-way probabilities: merge the mask, gender and age runs "
                "with kit.ensemble_runs, write its test rows with kit.write_test_probs and "
                "pass that file"
            )
        found.append((path, run))
    return found


def load_pseudo_labels(
    eval_df: pd.DataFrame | None,
    data_dir: Path,
    *,
    sources: Sources,
    threshold: float,
    targets: str = "hard",
) -> PseudoLabels:
    """The eval rows whose top probability (the mean over ``sources``) is above ``threshold``,
    labelled with the predicted class, in info.csv order; they train on ``targets``."""
    checked = check_pseudo_sources(sources)
    if eval_df is None:
        raise ValueError(
            f"pseudo_labels: {data_dir / 'eval' / 'info.csv'} not found; pseudo-labels are "
            "predictions of the eval pictures, so the data needs its eval set"
        )
    order = pd.Index(eval_df["image_id"].astype(str))
    probs = np.zeros((len(order), 18))
    for path, _ in checked:
        split = read_test_probs(path)
        ids = pd.Index(split.ids.astype(str))
        missing, extra = order.difference(ids), ids.difference(order)
        if len(missing) or len(extra):
            example = (missing if len(missing) else extra)[0]
            raise ValueError(
                f"pseudo_labels: {path} has {len(ids)} rows, {len(missing)} eval pictures "
                f"missing and {len(extra)} not in {data_dir / 'eval' / 'info.csv'} (e.g. "
                f"{example!r}); expected predictions of this data set's eval pictures"
            )
        probs += split.probs[ids.get_indexer(order)]
    probs /= len(checked)
    top, label = probs.max(axis=1), probs.argmax(axis=1)
    keep = top > threshold
    mask, gender, group = decode(label[keep])
    rows = eval_df.loc[keep, ["image_id", "path"]].reset_index(drop=True)
    rows = rows.assign(
        person_id="pseudo:" + rows["image_id"].astype(str),
        mask=mask,
        gender=gender,
        age=[GROUP_AGES[AgeGroup(g)] for g in group],
        age_group=group,
        label=label[keep],
        p_top=top[keep],
    )
    with PSEUDO_TARGETS.calling(targets, on=f"probabilities {probs[keep].shape}"):
        soft = PSEUDO_TARGETS.get(targets)(probs[keep])
    if soft is not None:
        rows[PROB_COLUMNS] = soft
    record = pseudo_record(checked, threshold, len(rows), len(order), targets)
    if rows.empty:
        _log.warning(
            "pseudo-labels: no eval picture has a top probability above %.3f (the highest is "
            "%.3f); this run trains on train.csv alone: lower pseudo_threshold",
            threshold,
            float(top.max(initial=0.0)),
        )
    _log.info(
        "pseudo-labels (%s): %d of %d eval pictures above %.3f from %s",
        targets,
        len(rows),
        len(order),
        threshold,
        ", ".join(str(p) for p, _ in checked),
    )
    return PseudoLabels(rows, record)
