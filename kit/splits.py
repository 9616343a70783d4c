"""Person-level validation splits, stratified on gender x age group.

All images of one person land on the same side (splitting by image leaks a face into both and
inflates the score). Within each gender x age-group cell, people are shuffled (seeded) and dealt
out in turn, so every fold holds each cell's count / ``n_splits``, give or take one person. The
result depends only on the people and the seed, not on the frame's row order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kit.config import Config, parse_age_ranges
from kit.data import read_eval, read_train, verify_images
from kit.data.fixture import resolve_data_dir
from kit.data.pseudo import PseudoLabels, load_pseudo_labels
from kit.labels import age_to_group

__all__ = [
    "Splits",
    "drop_ages",
    "holdout",
    "load_splits",
    "person_folds",
    "person_folds_of",
    "run_paths",
    "split_seed",
]

_log = logging.getLogger("kit")
_EVAL_FIX = (
    "replace them: a submission needs the picture of every row of eval/info.csv, so "
    "evaluation pictures are never dropped"
)

_STRATA = ("gender", "age_group")


def _people(df: pd.DataFrame, person_col: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(person ids sorted, stratum of each person, index into those ids for every row). A
    person takes their first row's gender and age group (from ``age`` if there is none)."""
    if "age_group" not in df.columns and "age" in df.columns:
        df = df.assign(age_group=age_to_group(df["age"].to_numpy()))
    missing = [c for c in (person_col, *_STRATA) if c not in df.columns]
    if missing:
        raise ValueError(
            f"the frame lacks column(s) {missing}; expected {person_col!r}, 'gender' and "
            f"'age_group' (found {list(df.columns)})"
        )
    if len(df) == 0:
        raise ValueError("the frame has no rows; expected at least one image per person")
    for col in (person_col, *_STRATA):
        null = df[col].isna().to_numpy()
        if null.any():
            row = df.index[int(np.flatnonzero(null)[0])]
            raise ValueError(f"column {col!r} is empty at row {row!r}; every row needs a value")
    keys = df[person_col].astype(str).to_numpy()
    ids, row_person = np.unique(keys, return_inverse=True)
    first = pd.Series(np.arange(len(df))).groupby(row_person).min().to_numpy()
    strata = df.iloc[first].groupby(list(_STRATA), sort=True).ngroup().to_numpy()
    return ids, strata.astype(np.int64), row_person.reshape(-1)


def person_folds(
    df: pd.DataFrame, n_splits: int = 5, seed: int = 0, person_col: str = "person_id"
) -> np.ndarray:
    """Fold id (``0..n_splits-1``) of every row of ``df``; one person, one fold. Needs the
    columns ``person_col``, ``gender`` and ``age_group`` (or ``age``)."""
    if int(n_splits) != n_splits or n_splits < 2:
        raise ValueError(f"n_splits must be an integer >= 2, got {n_splits!r}")
    ids, strata, row_person = _people(df, person_col)
    if len(ids) < n_splits:
        raise ValueError(
            f"{len(ids)} people cannot fill {n_splits} folds; use n_splits <= {len(ids)}"
        )
    rng = np.random.default_rng(seed)
    person_fold = np.empty(len(ids), dtype=np.int64)
    dealt = 0  # one running counter across cells keeps fold sizes within one person
    for cell in np.unique(strata):
        members = rng.permutation(np.flatnonzero(strata == cell))
        person_fold[members] = (dealt + np.arange(len(members))) % n_splits
        dealt += len(members)
    # Which fold receives the odd people is itself shuffled, so fold 0 is not always largest.
    person_fold = rng.permutation(n_splits)[person_fold]
    return person_fold[row_person]


def _quotas(counts: np.ndarray, n_val: int) -> np.ndarray:
    """Per-cell validation sizes proportional to ``counts``, summing to ``n_val``: largest
    remainder, ties to the larger cell, then the earlier one."""
    share = counts * (n_val / counts.sum())
    quota = np.floor(share).astype(np.int64)
    order = np.lexsort((np.arange(len(counts)), -counts, -(share - quota)))
    quota[order[: n_val - quota.sum()]] += 1
    return quota


def holdout(
    df: pd.DataFrame, val_ratio: float = 0.2, seed: int = 0, person_col: str = "person_id"
) -> np.ndarray:
    """True for the validation rows of ``df``: ``round(val_ratio * n_people)`` people (halves
    to even), each gender x age-group cell in proportion to its size."""
    if not 0.0 < val_ratio < 1.0:
        raise ValueError(f"val_ratio must be strictly between 0 and 1, got {val_ratio!r}")
    ids, strata, row_person = _people(df, person_col)
    n_val = round(val_ratio * len(ids))
    if not 0 < n_val < len(ids):
        raise ValueError(
            f"val_ratio {val_ratio} of {len(ids)} people gives {n_val} validation people; "
            f"both sides need at least one person"
        )
    cells, counts = np.unique(strata, return_counts=True)
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(ids), dtype=bool)
    for cell, quota in zip(cells, _quotas(counts, n_val), strict=True):
        members = rng.permutation(np.flatnonzero(strata == cell))
        is_val[members[:quota]] = True
    return is_val[row_person]


def drop_ages(df: pd.DataFrame, spec: str | None) -> pd.DataFrame:
    """The rows of ``df`` whose ``age`` lies in none of the inclusive ranges of ``spec``
    (``"27-29,57-59"``; None keeps all): ``cfg.drop_ages``, for training rows only."""
    if spec is None:
        return df
    if "age" not in df.columns:
        raise ValueError(f"drop_ages needs an 'age' column; the frame has {list(df.columns)}")
    ages = df["age"].to_numpy()
    inside = np.zeros(len(df), dtype=bool)
    for low, high in parse_age_ranges(spec):
        inside |= (ages >= low) & (ages <= high)
    kept = df[~inside].reset_index(drop=True)
    if len(kept) == 0:
        raise ValueError(
            f"drop_ages {spec!r} leaves no training rows (ages {ages.min()}..{ages.max()}); "
            "drop narrower ranges"
        )
    return kept


@dataclass
class Splits:
    """The frames of one run: training rows, validation rows, and the eval set if any."""

    data_dir: Path
    train: pd.DataFrame
    val: pd.DataFrame
    eval: pd.DataFrame | None
    fold: int  # fold id written to val_probs.csv; -1 for a holdout split
    pseudo: PseudoLabels | None = None  # eval rows trained on (cfg.pseudo_labels), never val

    @property
    def training(self) -> pd.DataFrame:
        """The rows training draws from: ``train``, plus the pseudo-labelled eval rows."""
        if self.pseudo is None:
            return self.train
        return pd.concat([self.train, self.pseudo.rows], ignore_index=True)


def load_splits(cfg: Config) -> Splits:
    """Read the data of ``cfg`` and split it by person (holdout, or fold k of n)."""
    data_dir = resolve_data_dir(cfg)
    df = read_train(data_dir, fixes=cfg.fixes, strict=cfg.strict_data)
    if cfg.limit_people is not None:
        keep = df["person_id"].drop_duplicates().iloc[: cfg.limit_people]
        df = df[df["person_id"].isin(keep)].reset_index(drop=True)
    # A zero-byte or cut-short picture stops the run here, named, not in epoch 9 (~0.1 ms each).
    df = verify_images(df, strict=cfg.strict_data)
    if cfg.fold is None:
        is_val, fold = holdout(df, val_ratio=cfg.val_ratio, seed=split_seed(cfg)), -1
    else:
        is_val, fold = person_folds_of(df, cfg) == cfg.fold, cfg.fold
    train, val = df[~is_val].reset_index(drop=True), df[is_val].reset_index(drop=True)
    if len(train) == 0 or len(val) == 0:
        raise ValueError(
            f"the split left {len(train)} training and {len(val)} validation images "
            f"({df['person_id'].nunique()} people); use more people or another val_ratio"
        )
    has_eval = (data_dir / "eval" / "info.csv").is_file()
    if not has_eval and (data_dir / "eval").is_dir():
        _log.warning("%s has no info.csv: this run writes no submission", data_dir / "eval")
    # always strict: a submission needs every row of info.csv
    test = verify_images(read_eval(data_dir), fix=_EVAL_FIX) if has_eval else None
    # after the split: pseudo-labelled eval pictures can only ever be training rows
    pseudo = None
    if cfg.pseudo_labels:
        pseudo = load_pseudo_labels(
            test,
            data_dir,
            sources=cfg.pseudo_labels,
            threshold=cfg.pseudo_threshold,
            targets=cfg.pseudo_targets,
        )
    return Splits(data_dir, train, val, test, fold, pseudo)


def person_folds_of(df: pd.DataFrame, cfg: Config) -> np.ndarray:
    """Fold of every row of ``df`` under ``cfg.n_folds`` and :func:`split_seed`."""
    people = df["person_id"].nunique()
    if people < cfg.n_folds:
        raise ValueError(
            f"{people} people cannot fill {cfg.n_folds} folds (config field 'n_folds'); "
            f"lower --n-folds to at most {people}, or use more people"
        )
    return person_folds(df, n_splits=cfg.n_folds, seed=split_seed(cfg))


def split_seed(cfg: Config) -> int:
    """``cfg.split_seed``, else ``cfg.seed`` (repeats over seeds keep their validation people
    by setting ``split_seed``)."""
    return cfg.seed if cfg.split_seed is None else cfg.split_seed


def run_paths(data: Splits) -> list[str]:
    """Every picture of ``data``, sorted: every fold and seed of one data set share a cache."""
    frames = [data.train, data.val] + ([data.eval] if data.eval is not None else [])
    return sorted({str(p) for df in frames for p in df["path"]})
