"""Comparing runs: which config fields differ, and a display table of the ledger."""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from kit.config import fields_with_role
from kit.runfolder import SCORE_COLUMNS, TRANSFORM_FIELD, read_config, transform_summary
from kit.runs import repeats
from kit.runs.ledger import flatten_config

__all__ = [
    "IGNORED_FIELDS",
    "BaselineChoice",
    "baseline_runs",
    "diff",
    "find_run",
    "is_score",
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


def is_score(column: str) -> bool:
    """Whether higher is better for ``column`` (F1 and accuracy columns)."""
    return "f1" in column or "accuracy" in column


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


def baseline_runs(df: pd.DataFrame, ref: str | os.PathLike[str]) -> tuple[str, pd.DataFrame]:
    """The name ``ref`` means as a baseline and the runs of its config over every seed.

    ``ref`` is a run (see :func:`find_run`), a ``--seeds`` parent folder (its name or path),
    or a group's row name as the ledger shows it (``<run> (+2 seeds)``).
    """
    name = Path(str(ref).rstrip("/")).name
    if repeats.GROUP_NAME.search(name):  # a group's row: its newest run stands for it
        ref = name = repeats.GROUP_NAME.sub("", name)
    members = df[df["parent"] == name] if "parent" in df.columns else df.iloc[0:0]
    if members.empty:
        name = find_run(df, ref)["name"]
        members = df[df["name"] == name]
    keys = {repeats.config_key(r, IGNORED_FIELDS) for _, r in members.iterrows()}
    family = [repeats.config_key(r, IGNORED_FIELDS) in keys for _, r in df.iterrows()]
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
    scores, ``f1_sd`` and ``n``; :func:`kit.runs.repeats.group`). ``vs``: a baseline run or
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
        rows = repeats.group(df, ignore)
    else:
        rows = df.assign(n=1, f1_sd=None, members=[[n] for n in df["name"]])
    out = rows.copy()
    out["who"] = [
        f"{u or '?'}@{c or '?'}{'*' if d else ''}"
        for u, c, d in zip(out["user"], out["commit"], out["dirty"], strict=True)
    ]
    fields = (
        [c for c in rows.columns if c.startswith("cfg.")] if all_fields else varying_fields(rows)
    )
    if all_fields:
        fields = [c for c in fields if c[4:] not in ignore]
    shown = list(_SHOWN)
    if (rows["n"] > 1).any():
        at = shown.index("val_macro_f1") + 1
        shown[at:at] = ["f1_sd", "n"]
    columns = [*shown, *(["parent"] if out["parent"].notna().any() else []), *fields]
    if vs is not None:
        out = pd.concat([out, _versus(df, rows, vs, ignore)], axis=1)
        columns += ["changes", "flag", "interval", "verdict", "noise", "pair"]
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
    seedless = (*ignore, *repeats.SEED_FIELDS)
    family = repeats.baseline_family(df, base_run, ignore)
    cells = []
    for _, row in rows.iterrows():
        if row["name"] == base["name"]:
            cells.append(dict.fromkeys(("changes", "interval", "verdict", "noise", "pair"), ""))
            cells[-1]["flag"] = "baseline"
            continue
        if row["n"] > 1:  # a group: compared with the baseline's group
            changes = diff(base, row, seedless)
            noise = repeats.seeds_noise(df, base, row)
            pair, partner = "", base
        else:
            partner = repeats.same_seed_run(family, row)
            partner = base_run if partner is None else partner
            changes = diff(partner, row, ignore)
            noise = repeats.bootstrap_runs(partner["run_dir"], row["run_dir"])
            pair = partner["name"]
        cells.append(
            {
                "changes": _change_text(changes, partner, row),
                "flag": _flag(len(changes)),
                "interval": noise.text,
                "verdict": noise.verdict,
                "noise": noise.how,
                "pair": pair,
            }
        )
    return pd.DataFrame(cells, index=rows.index)
