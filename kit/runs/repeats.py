"""Repeats and noise in the ledger: runs of one config that differ only by seed shown as one
row (mean ± sd over the seeds), a run paired with the baseline run of its own seed and split,
and whether its difference from the baseline is beyond the noise (:mod:`kit.noise`).

Two runs have the same seed when their ``seed`` and their split seed (``split_seed``, else
``seed``) are equal: the same initial weights and batches, the same validation people.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kit.noise import Interval, bootstrap_difference, mean_sd, seed_difference
from kit.runfolder import SCORE_COLUMNS, VAL_PROBS, read_val_keys, read_val_probs

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "GROUP_NAME",
    "SEED_FIELDS",
    "Noise",
    "baseline_family",
    "bootstrap_runs",
    "config_key",
    "group",
    "same_seed_run",
    "seed_key",
    "seeds_noise",
]

#: The fields repeats over seeds differ in (a group's row shows them joined: ``42,43,44``).
SEED_FIELDS = ("seed", "split_seed")
#: The end of a group's row name when its runs share no ``--seeds`` folder: `` (+2 seeds)``.
GROUP_NAME = re.compile(r" \(\+\d+ seeds?\)$")
#: Resamples of the people in the ledger's bootstrap (seeded: the same table every time).
BOOTSTRAP_RESAMPLES = 2000


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def seed_key(row: pd.Series) -> tuple[Any, Any]:
    """``(seed, split seed)`` of a ledger row: runs with equal keys start from the same
    weights and validate on the same people."""
    seed = _plain(row.get("cfg.seed"))
    split = _plain(row.get("cfg.split_seed"))
    return seed, seed if split is None else split


def config_key(row: pd.Series, ignore: tuple[str, ...]) -> str:
    """The row's config without its seeds and the ``ignore`` fields, as comparable text."""
    fields = {
        c[4:]: _plain(v)
        for c, v in row.items()
        if str(c).startswith("cfg.") and c[4:] not in (*ignore, *SEED_FIELDS)
    }
    return json.dumps(fields, sort_keys=True, default=str)


def _candidates(df: pd.DataFrame) -> pd.Series:
    """Rows that may join a group: complete, scored, not a fold of a K-fold parent."""
    kfold_parents = set(df.loc[df["kfold"].fillna(False).astype(bool), "name"])
    return (
        (df["status"] == "complete")
        & df["val_macro_f1"].notna()
        & ~df["parent"].isin(kfold_parents)
    )


def group(df: pd.DataFrame, ignore: tuple[str, ...]) -> pd.DataFrame:
    """``df`` with the complete runs of one config over two or more seeds as one row.

    A group's row holds the mean of each score, ``f1_sd`` (the standard deviation of
    val_macro_f1 over the seeds), ``n`` (seeds), ``members`` (the runs' names, one per seed:
    the newest where a seed ran twice), ``seeds`` and the seed fields joined
    (``42,43,44``); its name is the ``--seeds`` parent folder the runs share, else
    ``<newest run> (+k seeds)``. Every other row has ``n`` 1 and ``members`` itself.
    """
    if df.empty:
        return df.assign(n=[], f1_sd=[], members=[])
    ok = _candidates(df)
    keys = pd.Series(
        [config_key(r, ignore) if ok[i] else None for i, r in df.iterrows()], index=df.index
    )
    out_rows: list[dict[str, Any]] = []
    done: set[Any] = set()
    for i, row in df.iterrows():
        if i in done:
            continue
        key = keys[i]
        same = df[keys == key] if key is not None else df.loc[[i]]
        # one run per seed: the newest (folder names start with the time)
        per_seed = {}
        for _, r in same.sort_values("name").iterrows():
            per_seed[seed_key(r)] = r
        if key is None or len(per_seed) < 2:
            done.add(i)
            out_rows.append({**row.to_dict(), "n": 1, "f1_sd": None, "members": [row["name"]]})
            continue
        members = [per_seed[k] for k in sorted(per_seed, key=lambda k: tuple(map(str, k)))]
        done.update(same.index)
        out_rows.append(_group_row(members))
    out = pd.DataFrame(out_rows)
    return out


def _group_row(members: list[pd.Series]) -> dict[str, Any]:
    newest = max(members, key=lambda r: r["name"])
    row = newest.to_dict()
    parents = {r["parent"] if pd.notna(r["parent"]) else None for r in members}
    parent = parents.pop() if len(parents) == 1 else None
    others = len(members) - 1
    row["name"] = parent or f"{newest['name']} (+{others} seed{'s' if others > 1 else ''})"
    row["parent"] = None
    row["run_dir"] = str(Path(newest["run_dir"]).parent) if parent else newest["run_dir"]
    for col in (*SCORE_COLUMNS, "best_epoch"):
        if col in row:
            values = pd.to_numeric(pd.Series([r[col] for r in members]), errors="coerce")
            row[col] = float(values.mean()) if values.notna().any() else None
    _, sd, n = mean_sd([float(r["val_macro_f1"]) for r in members])
    keys = [seed_key(r) for r in members]
    row["cfg.seed"] = ",".join(str(k[0]) for k in keys)
    splits = list(dict.fromkeys(str(k[1]) for k in keys))
    row["cfg.split_seed"] = ",".join(splits)
    row.update(n=n, f1_sd=sd, members=[r["name"] for r in members])
    return row


@dataclass(frozen=True)
class Noise:
    """A row's difference from its baseline: the interval, or why there is none."""

    interval: Interval | None
    reason: str = ""

    @property
    def verdict(self) -> str:
        return "n/a" if self.interval is None else self.interval.verdict

    @property
    def text(self) -> str:
        return "-" if self.interval is None else self.interval.text()

    @property
    def how(self) -> str:
        """The method (with the standard error of a difference of means), or the reason."""
        if self.interval is None:
            return self.reason
        se = self.interval.se
        return self.interval.method + ("" if se is None else f", se {se:.4f}")


def baseline_family(df: pd.DataFrame, base: pd.Series, ignore: tuple[str, ...]) -> pd.DataFrame:
    """The baseline ``base`` and the complete runs of its config over other seeds."""
    key = config_key(base, ignore)
    pool = df[_candidates(df) | (df["name"] == base["name"])]
    return pool[[config_key(r, ignore) == key for _, r in pool.iterrows()]]


def same_seed_run(family: pd.DataFrame, run: pd.Series) -> pd.Series | None:
    """The run of ``family`` (:func:`baseline_family`) with ``run``'s seed and split, the
    newest where several, or None."""
    want = seed_key(run)
    hits = [r for _, r in family.iterrows() if seed_key(r) == want and r["name"] != run["name"]]
    return max(hits, key=lambda r: r["name"]) if hits else None


def seeds_noise(df: pd.DataFrame, base: pd.Series, other: pd.Series) -> Noise:
    """Group versus group: the difference of the mean val_macro_f1 and its interval (paired
    seed by seed when both groups ran the same seeds)."""
    by_name = df.set_index("name")
    a = {seed_key(by_name.loc[m]): float(by_name.loc[m, "val_macro_f1"]) for m in base["members"]}
    b = {seed_key(by_name.loc[m]): float(by_name.loc[m, "val_macro_f1"]) for m in other["members"]}
    if len(a) < 2 or len(b) < 2:
        which = "the baseline has" if len(a) < 2 else "this row has"
        return Noise(None, f"{which} one seed: no spread (train with --seeds 3)")
    paired = set(a) == set(b)
    order = sorted(a, key=lambda k: tuple(map(str, k)))
    ref = [a[k] for k in order] if paired else list(a.values())
    oth = [b[k] for k in order] if paired else list(b.values())
    return Noise(seed_difference(reference=ref, other=oth, paired=paired))


def _val(run_dir: str) -> pd.DataFrame | None:
    """A run's validation rows: image id -> truth, person, predicted class; None when its
    val_probs.csv is missing or damaged."""
    path = Path(run_dir)
    try:
        split, keys = read_val_probs(path / VAL_PROBS), read_val_keys(path)
    except (OSError, ValueError):
        return None
    keys = keys.take(split.ids)
    return pd.DataFrame(
        {"truth": split.truth, "person": keys.person_ids, "pred": split.labels}, index=split.ids
    )


def bootstrap_runs(base_dir: str, run_dir: str, *, seed: int = 0) -> Noise:
    """One run versus one: the paired bootstrap over the validation people both predicted
    (their ``val_probs.csv``; a K-fold parent's is every person's out-of-fold prediction)."""
    fa, fb = _val(base_dir), _val(run_dir)
    if fa is None or fb is None:
        return Noise(None, "no readable 18-class val_probs.csv")
    if set(fa.index) != set(fb.index):
        return Noise(None, "other validation pictures (another split)")
    fb = fb.loc[fa.index]
    if not (fa["truth"].to_numpy() == fb["truth"].to_numpy()).all():
        return Noise(None, "other labels for the same pictures (other label fixes)")
    interval = bootstrap_difference(
        truth=fa["truth"].to_numpy(),
        pred_reference=fa["pred"].to_numpy(),
        pred_other=fb["pred"].to_numpy(),
        person_ids=fa["person"].to_numpy(),
        resamples=BOOTSTRAP_RESAMPLES,
        seed=seed,
    )
    return Noise(interval)
