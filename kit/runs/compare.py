"""Comparing runs: which config fields differ, and the ledger's table as shown (:func:`table`).

Runs of one config that differ only by seed are shown as one row (mean ± sd over the seeds); a
run is paired with the baseline run of its own seed and split, and its difference from the
baseline is judged beyond the noise or not (:mod:`kit.metrics`). Two runs have the same seed
when their ``seed`` and their split seed (``split_seed``, else ``seed``) are equal: the same
initial weights and batches, the same validation people.
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kit.config import fields_with_role
from kit.metrics import Interval, bootstrap_difference, mean_sd, seed_difference
from kit.runfolder import (
    SCORE_COLUMNS,
    TRANSFORM_FIELD,
    VAL_PROBS,
    read_config,
    read_val,
    transform_summary,
)
from kit.runs.ledger import flatten_config, is_score

__all__ = [
    "BOOTSTRAP_RESAMPLES",
    "GROUP_NAME",
    "IGNORED_FIELDS",
    "SEED_FIELDS",
    "BaselineChoice",
    "baseline_family",
    "baseline_runs",
    "bootstrap_runs",
    "config_key",
    "diff",
    "find_run",
    "group_repeats",
    "same_seed_run",
    "seed_key",
    "seeds_noise",
    "table",
    "varying_fields",
]

#: Config fields that differ between runs without being an experimental variable (every
#: field whose role is run, machine or output, see :data:`kit.config.ROLES`): they never
#: count as a change and are hidden from the ledger.
IGNORED_FIELDS: tuple[str, ...] = fields_with_role("run", "machine", "output")


class BaselineChoice(UserWarning):
    """``vs`` named a run name that several runs share: which one was taken."""


_SHOWN = ("name", "date", "who", "status", *SCORE_COLUMNS, "best_epoch")
#: The columns a baseline (``vs``) adds.
_VS_COLUMNS = ("changes", "flag", "interval", "verdict", "noise", "pair")

#: The fields repeats over seeds differ in (a group's row shows them joined: ``42,43,44``).
SEED_FIELDS = ("seed", "split_seed")
#: The end of a group's row name when its runs share no ``--seeds`` folder: `` (+2 seeds)``.
GROUP_NAME = re.compile(r" \(\+\d+ seeds?\)$")
#: Resamples of the people in the ledger's bootstrap (seeded: the same table every time).
BOOTSTRAP_RESAMPLES = 2000


def _key(value: Any) -> str:
    """A comparable text for a config value: missing, None and NaN are all ``null``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    return json.dumps(value, sort_keys=True, default=str)


def _config_of(run: str | os.PathLike[str] | pd.Series | dict[str, Any]) -> dict[str, Any]:
    if isinstance(run, pd.Series):
        run = run.to_dict()
    if isinstance(run, dict):
        if any(k.startswith("cfg.") for k in run):
            return {k[4:]: v for k, v in run.items() if k.startswith("cfg.")}
        return {k[4:]: v for k, v in flatten_config(run).items()}
    config = {k[4:]: v for k, v in flatten_config(read_config(run, missing_ok=False)).items()}
    return {**config, TRANSFORM_FIELD: transform_summary(run)}


def diff(
    run_a: str | os.PathLike[str] | pd.Series | dict[str, Any],
    run_b: str | os.PathLike[str] | pd.Series | dict[str, Any],
    ignore: tuple[str, ...] = IGNORED_FIELDS,
) -> dict[str, tuple[Any, Any]]:
    """Config fields whose values differ: ``{field: (value in a, value in b)}``.

    Runs are run folders, ledger rows (:func:`kit.runs.load`) or config dicts; a field
    missing on one side counts as None. Fields in ``ignore`` are never reported.
    """
    a, b = _config_of(run_a), _config_of(run_b)
    fields = [f for f in dict.fromkeys([*a, *b]) if f not in ignore]
    return {f: (a.get(f), b.get(f)) for f in fields if _key(a.get(f)) != _key(b.get(f))}


def varying_fields(df: pd.DataFrame, ignore: tuple[str, ...] = IGNORED_FIELDS) -> list[str]:
    """``cfg.`` columns whose values are not the same in every row (ignored fields left out)."""
    cols = [c for c in df.columns if c.startswith("cfg.") and c[4:] not in ignore]
    return [c for c in cols if df[c].map(_key).nunique() > 1]


def find_run(df: pd.DataFrame, ref: str | os.PathLike[str]) -> pd.Series:
    """The ledger row for ``ref``: a folder name, a run name, a folder path, a unique substring.

    A run name (``cfg.name``) that several runs share, the baseline trained again say, means
    the newest of them (a :class:`BaselineChoice` warning says which).
    """
    ref_s = str(ref).rstrip("/")
    if "cfg.name" in df.columns:
        named = df[(df["cfg.name"] == ref_s) & (df["name"] != ref_s)]
        if len(named) and not (df["name"] == ref_s).any():
            chosen = named.loc[named["name"].idxmax()]  # folder names start with the time
            if len(named) > 1:
                others = sorted(set(named["name"]) - {chosen["name"]})
                warnings.warn(
                    f"{ref_s!r} names {len(named)} runs; comparing with the newest, "
                    f"{chosen['name']} (not {', '.join(others)}); pass a folder name to choose",
                    BaselineChoice,
                    stacklevel=2,
                )
            return chosen
    for hits in (
        df[df["name"] == ref_s],
        df[df["run_dir"].map(lambda p: Path(p).resolve()) == Path(ref_s).resolve()],
        df[df["name"].str.contains(ref_s, regex=False)],
    ):
        if len(hits) == 1:
            return hits.iloc[0]
        if len(hits) > 1:
            raise ValueError(f"{ref_s!r} matches {len(hits)} runs: {hits['name'].tolist()}")
    raise ValueError(f"no run {ref_s!r} in the ledger; runs: {df['name'].tolist()}")


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


def group_repeats(df: pd.DataFrame, ignore: tuple[str, ...]) -> pd.DataFrame:
    """``df`` with the complete runs of one config over two or more seeds as one row.

    A group's row holds the mean of each score, ``f1_sd`` (the standard deviation of
    val_macro_f1 over the seeds), ``n`` (seeds), ``members`` (the runs' names, one per seed:
    the newest where a seed ran twice), ``seeds`` and the seed fields joined
    (``42,43,44``); its name is the ``--seeds`` parent folder the runs share, else
    ``<newest run> (+k seeds)``. Every other row has ``n`` 1 and ``members`` itself.
    """
    if df.empty:
        return df.assign(n=[], f1_sd=[], members=[])
    rows = [r for _, r in df.iterrows()]
    keys = [
        config_key(r, ignore) if ok else None for r, ok in zip(rows, _candidates(df), strict=True)
    ]
    # each config's runs by seed, one per seed: the newest (folder names start with the time)
    by_seed: dict[str, dict[tuple[Any, Any], pd.Series]] = {}
    for row, key in sorted(zip(rows, keys, strict=True), key=lambda pair: pair[0]["name"]):
        if key is not None:
            by_seed.setdefault(key, {})[seed_key(row)] = row
    out_rows: list[dict[str, Any]] = []
    shown: set[str] = set()
    for row, key in zip(rows, keys, strict=True):
        group = by_seed.get(key, {})
        if len(group) < 2:
            out_rows.append({**row.to_dict(), "n": 1, "f1_sd": None, "members": [row["name"]]})
        elif key not in shown:  # the group's row stands where its first run stood
            shown.add(key)
            out_rows.append(
                _group_row([group[k] for k in sorted(group, key=lambda k: tuple(map(str, k)))])
            )
    return pd.DataFrame(out_rows)


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


def _noise(interval: Interval | None, reason: str = "") -> dict[str, str]:
    """A row's ``interval``, ``verdict`` and ``noise`` cells against its baseline: the
    interval and how it was found (with the standard error of a difference of means), or why
    there is none."""
    if interval is None:
        return {"interval": "-", "verdict": "n/a", "noise": reason}
    se = "" if interval.se is None else f", se {interval.se:.4f}"
    return {"interval": interval.text(), "verdict": interval.verdict, "noise": interval.method + se}


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


def seeds_noise(df: pd.DataFrame, base: pd.Series, other: pd.Series) -> dict[str, str]:
    """Group versus group: the difference of the mean val_macro_f1 and its interval (paired
    seed by seed when both groups ran the same seeds)."""
    by_name = df.set_index("name")
    a = {seed_key(by_name.loc[m]): float(by_name.loc[m, "val_macro_f1"]) for m in base["members"]}
    b = {seed_key(by_name.loc[m]): float(by_name.loc[m, "val_macro_f1"]) for m in other["members"]}
    if len(a) < 2 or len(b) < 2:
        which = "the baseline has" if len(a) < 2 else "this row has"
        return _noise(None, f"{which} one seed: no spread (train with --seeds 3)")
    paired = set(a) == set(b)
    order = sorted(a, key=lambda k: tuple(map(str, k)))
    ref = [a[k] for k in order] if paired else list(a.values())
    oth = [b[k] for k in order] if paired else list(b.values())
    return _noise(seed_difference(reference=ref, other=oth, paired=paired))


def _val(run_dir: str) -> pd.DataFrame | None:
    """A run's validation rows: image id -> truth, person, predicted class; None when its
    val_probs.csv is missing or damaged."""
    path = Path(run_dir)
    try:
        split, keys = read_val(path / VAL_PROBS)
    except (OSError, ValueError):
        return None
    return pd.DataFrame(
        {"truth": split.truth, "person": keys.person_ids, "pred": split.labels}, index=split.ids
    )


def bootstrap_runs(base_dir: str, run_dir: str, *, seed: int = 0) -> dict[str, str]:
    """One run versus one: the paired bootstrap over the validation people both predicted
    (their ``val_probs.csv``; a K-fold parent's is every person's out-of-fold prediction)."""
    return _bootstrap(_val(base_dir), _val(run_dir), seed)


def _bootstrap(fa: pd.DataFrame | None, fb: pd.DataFrame | None, seed: int = 0) -> dict[str, str]:
    """:func:`bootstrap_runs` of two runs' validation rows (:func:`_val`)."""
    if fa is None or fb is None:
        return _noise(None, "no readable 18-class val_probs.csv")
    if set(fa.index) != set(fb.index):
        return _noise(None, "other validation pictures (another split)")
    fb = fb.loc[fa.index]
    if not (fa["truth"].to_numpy() == fb["truth"].to_numpy()).all():
        return _noise(None, "other labels for the same pictures (other label fixes)")
    interval = bootstrap_difference(
        truth=fa["truth"].to_numpy(),
        pred_reference=fa["pred"].to_numpy(),
        pred_other=fb["pred"].to_numpy(),
        person_ids=fa["person"].to_numpy(),
        resamples=BOOTSTRAP_RESAMPLES,
        seed=seed,
    )
    return _noise(interval)


def baseline_runs(df: pd.DataFrame, ref: str | os.PathLike[str]) -> tuple[str, pd.DataFrame]:
    """The name ``ref`` means as a baseline and the runs of its config over every seed.

    ``ref`` is a run (see :func:`find_run`), a ``--seeds`` parent folder (its name or path),
    or a group's row name as the ledger shows it (``<run> (+2 seeds)``).
    """
    name = Path(str(ref).rstrip("/")).name
    if GROUP_NAME.search(name):  # a group's row: its newest run stands for it
        ref = name = GROUP_NAME.sub("", name)
    members = df[df["parent"] == name] if "parent" in df.columns else df.iloc[0:0]
    if members.empty:
        name = find_run(df, ref)["name"]
        members = df[df["name"] == name]
    keys = {config_key(r, IGNORED_FIELDS) for _, r in members.iterrows()}
    family = [config_key(r, IGNORED_FIELDS) in keys for _, r in df.iterrows()]
    return name, df[family]


def _change_text(changes: dict[str, tuple[Any, Any]], base: pd.Series, row: pd.Series) -> str:
    return "; ".join(
        f"{f}: {_show_field(f, a, base)} -> {_show_field(f, b, row)}"
        for f, (a, b) in changes.items()
    )


def _show_field(field: str, value: Any, row: pd.Series) -> str:
    """A value of the changes column: a run without a custom transform trained its preset's."""
    if field == TRANSFORM_FIELD and _key(value) == "null":
        return f"preset {_show(row.get('cfg.preset'))}"
    return _show(value)


def _flag(n_changes: int) -> str:
    if n_changes == 0:
        return "same config"
    return "" if n_changes == 1 else f"UNCONTROLLED ({n_changes} changes)"


def _show(value: Any) -> str:
    if _key(value) == "null":
        return "-"
    # an int column holding a missing value is read as floats: show 12, not 12.0
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def table(
    df: pd.DataFrame,
    vs: str | os.PathLike[str] | None = None,
    *,
    all_fields: bool = False,
    sort: str | None = None,
    ignore: tuple[str, ...] = IGNORED_FIELDS,
    group: bool = True,
) -> pd.DataFrame:
    """The ledger as shown: name, date, who, status, scores and the config fields that vary.

    ``group``: complete runs of one config that differ only by seed are one row (the mean
    scores, ``f1_sd`` and ``n``; :func:`group_repeats`). ``vs``: a baseline run or
    group (name, folder or unique part of a name); adds ``changes`` (``field: base -> this``),
    ``flag`` (``UNCONTROLLED (k changes)`` when a run differs from the baseline in more than one
    field), ``interval`` (the difference of val macro F1 from the baseline and its 95%
    interval), ``verdict`` (``beyond noise``, ``within noise`` or ``n/a``), ``noise`` (how the
    interval was found, or why there is none) and ``pair`` (the baseline run it was compared
    with). A run is compared with the baseline run of its own seed and split when there is
    one; a group with the baseline's group. ``sort``: any column, scores descending.
    """
    if df.empty:
        return pd.DataFrame(columns=list(_SHOWN))
    if group:
        rows = group_repeats(df, ignore)
    else:
        rows = df.assign(n=1, f1_sd=None, members=[[n] for n in df["name"]])
    out = rows.copy()
    out["who"] = [
        f"{u or '?'}@{c or '?'}{'*' if d else ''}"
        for u, c, d in zip(out["user"], out["commit"], out["dirty"], strict=True)
    ]
    every = [c for c in rows.columns if c.startswith("cfg.") and c[4:] not in ignore]
    fields = every if all_fields else varying_fields(rows)
    shown = list(_SHOWN)
    if (rows["n"] > 1).any():
        at = shown.index("val_macro_f1") + 1
        shown[at:at] = ["f1_sd", "n"]
    columns = [*shown, *(["parent"] if out["parent"].notna().any() else []), *fields]
    if vs is not None:
        out = pd.concat([out, _versus(df, rows, vs, ignore)], axis=1)
        columns += _VS_COLUMNS
    if sort is not None:
        if sort not in out.columns:
            raise ValueError(f"cannot sort by {sort!r}; expected one of {list(out.columns)}")
        out = out.sort_values(sort, ascending=not is_score(sort), na_position="last", kind="stable")
    out = out[columns].rename(columns={c: c[4:] for c in fields})
    return out.reset_index(drop=True)


def _versus(
    df: pd.DataFrame, rows: pd.DataFrame, vs: str | os.PathLike[str], ignore: tuple[str, ...]
) -> pd.DataFrame:
    """The ``vs`` columns of every row of ``rows`` (grouped ledger rows of ``df``)."""
    named = rows[rows["name"] == str(vs).rstrip("/")]
    base_run = find_run(df, vs) if named.empty else None
    if named.empty:
        named = rows[rows["members"].map(lambda m: base_run["name"] in m)]
    base = named.iloc[0]
    if base_run is None:  # a group named: its newest run stands for it
        base_run = df[df["name"] == max(base["members"])].iloc[0]
    seedless = (*ignore, *SEED_FIELDS)
    family = baseline_family(df, base_run, ignore)
    val = functools.cache(_val)  # the baseline's file is every single run's partner
    cells = []
    for _, row in rows.iterrows():
        if row["name"] == base["name"]:
            cells.append({**dict.fromkeys(_VS_COLUMNS, ""), "flag": "baseline"})
            continue
        if row["n"] > 1:  # a group: compared with the baseline's group
            changes = diff(base, row, seedless)
            noise = seeds_noise(df, base, row)
            pair, partner = "", base
        else:
            partner = same_seed_run(family, row)
            partner = base_run if partner is None else partner
            changes = diff(partner, row, ignore)
            noise = _bootstrap(val(partner["run_dir"]), val(row["run_dir"]))
            pair = partner["name"]
        changed = _change_text(changes, partner, row)
        cells.append({"changes": changed, "flag": _flag(len(changes)), **noise, "pair": pair})
    return pd.DataFrame(cells, index=rows.index)
