"""Opt-in corrections of known label errors, each with its source; a user file can override them.

A fix names a person and one field: ``gender`` (value ``male``/``female``), ``age`` (whole
years) or ``swap_mask`` (value ``1``: that person's ``incorrect_mask`` and ``normal`` pictures
carry each other's label; ``0`` cancels such a swap).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd

from kit.data._common import (
    SHOWN,
    STEM_MASK,
    DataError,
    parse_age,
    parse_gender,
    read_csv_checked,
    with_labels,
)
from kit.labels import Mask

__all__ = ["BUILTIN_FIXES", "Fix", "FixReport", "FixSpec", "apply_fixes", "load_fixes"]

_PathLike = Union[str, "os.PathLike[str]"]
#: What :func:`load_fixes` accepts: None, "builtin", a CSV path, Fix objects, or a list of these.
FixSpec = Union[None, _PathLike, "Fix", Sequence[Union[_PathLike, "Fix"]]]


@dataclass(frozen=True)
class Fix:
    """One correction: set ``field`` of every image of ``person_id`` to ``value``."""

    person_id: str
    field: str
    value: str
    source: str


_SWAP_WORDS = {"1": "1", "true": "1", "yes": "1", "0": "0", "false": "0", "no": "0"}


def _norm_swap(value: str) -> str:
    key = str(value).strip().lower()
    if key not in _SWAP_WORDS:
        raise ValueError(f"found {value!r}, expected 1 (swap) or 0 (no swap)")
    return _SWAP_WORDS[key]


_GENDER_WORDS = ("male", "female")
#: Field -> normaliser of its value text (raises ValueError saying what was expected).
_NORMALISE: dict[str, Callable[[str], str]] = {
    "gender": lambda v: _GENDER_WORDS[parse_gender(v)],
    "age": lambda v: str(parse_age(v)),
    "swap_mask": _norm_swap,
}

_SOURCE = "public write-ups of the 2021/2022 competition teams (see docs/data.md)"
BUILTIN_FIXES: tuple[Fix, ...] = (
    *(Fix(p, "swap_mask", "1", _SOURCE) for p in ("000020", "004418", "005227")),
    *(
        Fix(p, "gender", "male", _SOURCE)
        for p in ("006359", "006360", "006361", "006362", "006363", "006364", "001720")
    ),
    *(Fix(p, "gender", "female", _SOURCE) for p in ("001498-1", "004432", "005223")),
    *(Fix(p, "age", "29", _SOURCE) for p in ("001009", "001064", "001637", "001666", "001852")),
    Fix("004348", "age", "61", _SOURCE),
)


def _checked(fix: Fix, where: str) -> Fix:
    """``fix`` with its value normalised, or a DataError naming ``where`` and the field."""
    person_id = str(fix.person_id).strip()
    if not person_id:
        raise DataError(f"{where}, field 'person_id': found an empty id, expected a person id")
    if fix.field not in _NORMALISE:
        raise DataError(
            f"{where}, field 'field': found {fix.field!r}, expected one of {', '.join(_NORMALISE)}"
        )
    try:
        value = _NORMALISE[fix.field](fix.value)
    except ValueError as err:
        raise DataError(f"{where}, field 'value' ({fix.field}): {err}") from None
    return Fix(person_id, fix.field, value, fix.source)


def _read_fix_csv(path: Path) -> list[Fix]:
    table = read_csv_checked(path, ("person_id", "field", "value"))
    has_source = "source" in table.columns
    fixes = []
    for line, row in zip(table.index, table.to_dict("records"), strict=True):
        where = f"{path} line {line}"
        source = str(row["source"]).strip() if has_source else ""
        fix = Fix(row["person_id"], str(row["field"]).strip(), row["value"], source or where)
        fixes.append(_checked(fix, where))
    return fixes


def _load_one(item: _PathLike | Fix) -> list[Fix]:
    if isinstance(item, Fix):
        return [_checked(item, f"fix {item!r}")]
    if isinstance(item, str) and item == "builtin":
        return list(BUILTIN_FIXES)
    path = Path(item)
    if not path.is_file():
        raise DataError(f"fixes {str(item)!r}: expected 'builtin' or a CSV file, found neither")
    return _read_fix_csv(path)


def load_fixes(spec: FixSpec) -> list[Fix]:
    """The fixes named by ``spec``: None -> none; "builtin" -> :data:`BUILTIN_FIXES`; a CSV
    path (columns ``person_id,field,value[,source]``); or a list of these, where a later entry
    replaces an earlier one for the same (person_id, field)."""
    if spec is None:
        return []
    items = [spec] if isinstance(spec, (str, os.PathLike, Fix)) else list(spec)
    merged: dict[tuple[str, str], Fix] = {}
    for item in items:
        for fix in _load_one(item):
            merged.pop((fix.person_id, fix.field), None)  # re-insert: keep the latest's order
            merged[(fix.person_id, fix.field)] = fix
    return list(merged.values())


@dataclass
class FixReport:
    """What :func:`apply_fixes` did; ``str(report)`` is a one-line summary."""

    applied: list[Fix] = field(default_factory=list)
    unchanged: list[Fix] = field(default_factory=list)  # applied, but the data already agreed
    missing: list[Fix] = field(default_factory=list)  # person not in the frame, not applied

    @property
    def count(self) -> int:
        return len(self.applied)

    @property
    def ids(self) -> list[str]:
        return sorted({f.person_id for f in self.applied})

    def records(self) -> list[dict[str, Any]]:
        """The applied fixes as plain dicts (with ``changed``), e.g. for ``df.attrs``."""
        return [{**asdict(f), "changed": f not in self.unchanged} for f in self.applied]

    def __str__(self) -> str:
        n, people = self.count, len(self.ids)
        text = (
            f"applied {n} label fix{'es' * (n != 1)} to {people} "
            f"{'person' if people == 1 else 'people'}: {', '.join(self.ids) or '-'}"
        )
        if self.unchanged:
            text += f"; {len(self.unchanged)} already in place: " + _ids(self.unchanged)
        if self.missing:
            text += f"; {len(self.missing)} for people not in the data: " + _ids(self.missing)
        return text


def _ids(fixes: Iterable[Fix]) -> str:
    return ", ".join(sorted({f.person_id for f in fixes}))


_SWAPPED = {**STEM_MASK, "incorrect_mask": int(Mask.NOT_WEAR), "normal": int(Mask.INCORRECT)}


def _apply(df: pd.DataFrame, rows: np.ndarray, fix: Fix) -> None:
    if fix.field == "swap_mask":
        # From the file stem, not the current label, so applying a fix twice changes nothing.
        table = _SWAPPED if fix.value == "1" else STEM_MASK
        df.loc[rows, "mask"] = df.loc[rows, "stem"].map(table).to_numpy()
    else:
        df.loc[rows, fix.field] = (parse_gender if fix.field == "gender" else parse_age)(fix.value)


_NEEDED = ("person_id", "stem", "gender", "age", "mask")


def apply_fixes(
    df: pd.DataFrame, fixes: Iterable[Fix], strict: bool = True
) -> tuple[pd.DataFrame, FixReport]:
    """A copy of the per-image frame ``df`` with ``fixes`` applied and age_group / label redone.

    A fix for a person absent from ``df`` is a DataError, or with ``strict=False`` a warning.
    """
    missing_cols = [c for c in _NEEDED if c not in df.columns]
    if missing_cols:
        raise DataError(f"apply_fixes: frame lacks column(s) {', '.join(missing_cols)}")
    fixes = [_checked(f, f"fix {f!r}") for f in fixes]
    people = set(df["person_id"])
    report = FixReport(missing=[f for f in fixes if f.person_id not in people])
    if report.missing:
        msg = f"{len(report.missing)} label fix(es) name people not in the data: " + "; ".join(
            f"{f.person_id} ({f.field}={f.value}, from {f.source})" for f in report.missing[:SHOWN]
        )
        if strict:
            raise DataError(msg + "; pass strict=False (training: --no-strict-data) to skip them")
        warnings.warn(msg, stacklevel=2)
    out = df.copy()
    person = out["person_id"].to_numpy()
    for fix in fixes:
        if fix.person_id not in people:
            continue
        rows = person == fix.person_id
        before = out.loc[rows, ["gender", "age", "mask"]].to_numpy().copy()
        _apply(out, rows, fix)
        report.applied.append(fix)
        if np.array_equal(before, out.loc[rows, ["gender", "age", "mask"]].to_numpy()):
            report.unchanged.append(fix)
    return with_labels(out), report
