"""Reading the competition layout: ``train/train.csv`` + person folders, ``eval/info.csv``.

Both readers check the layout up front and stop with a :class:`DataError` naming the file,
row and field, what was found and what was expected, instead of failing mid-training.
"""

from __future__ import annotations

import logging
import os
import unicodedata
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kit.data._common import (
    FRAME_COLUMNS,
    IMAGE_EXTENSIONS,
    STEM_MASK,
    STEMS,
    DataError,
    data_root,
    parse_age,
    parse_gender,
    read_csv_checked,
)
from kit.data._eval import read_eval
from kit.data._verify import verify_images
from kit.data.fixes import FixSpec, apply_fixes, load_fixes
from kit.labels import age_to_group, encode

__all__ = ["DataError", "read_eval", "read_train", "verify_images"]

TRAIN_COLUMNS: tuple[str, ...] = ("id", "gender", "race", "age", "path")
_STEM_ORDER = {stem: i for i, stem in enumerate(STEMS)}
_SHOWN_REASONS = 5
_log = logging.getLogger("kit")


def read_train(
    data_dir: str | os.PathLike[str], fixes: FixSpec = None, strict: bool = True
) -> pd.DataFrame:
    """One row per training image (columns as in docs/architecture.md), sorted by folder, stem.

    ``fixes`` is a :func:`~kit.data.load_fixes` spec (``"builtin"``, a CSV path, a list);
    the applied fixes are logged and kept in ``df.attrs["fixes"]``. With ``strict=False``
    people with problems (missing folder or picture, bad gender / age, ...) are skipped with one
    warning; a missing data folder, train.csv or column is always an error.
    """
    root = data_root(data_dir)
    csv_path = root / "train" / "train.csv"
    meta = read_csv_checked(csv_path, TRAIN_COLUMNS)
    if meta.empty:
        raise DataError(f"{csv_path}: has a header but no rows (expected one row per person)")
    images_dir = root / "train" / "images"
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: folder not found (expected one sub-folder per person)")

    lines_of: dict[str, list[int]] = {}
    for line, value in meta["path"].str.strip().items():
        lines_of.setdefault(value, []).append(int(line))
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    skipped_images = 0
    for line, rec in zip(
        meta.index, meta[list(TRAIN_COLUMNS)].itertuples(index=False), strict=True
    ):
        try:
            rows.extend(_person_rows(rec, int(line), csv_path, images_dir, lines_of))
        except DataError as err:
            problems.append(str(err))
            skipped_images += _count_images(images_dir / str(rec.path).strip())
    if problems and not rows:
        raise DataError(f"{csv_path}: none of its {len(meta)} people can be read: {problems[0]}")
    if problems:
        _report_problems(problems, skipped_images, strict)
    frame = _to_frame(rows)
    if fixes is not None:
        frame, report = apply_fixes(frame, load_fixes(fixes), strict=strict)
        _log.info("%s", report)
        frame.attrs["fixes"] = report.records()
    return frame


def _person_rows(
    rec: Any, line: int, csv_path: Path, images_dir: Path, lines_of: dict[str, list[int]]
) -> list[dict[str, Any]]:
    where = f"{csv_path} line {line}"
    person_id, folder = str(rec.id).strip(), str(rec.path).strip()
    if not person_id:
        raise DataError(f"{where}, field 'id': found an empty id, expected a person id")
    values: dict[str, int] = {}
    for field, parse in (("gender", parse_gender), ("age", parse_age)):
        try:
            values[field] = parse(getattr(rec, field))
        except ValueError as err:
            raise DataError(f"{where}, field '{field}': {err}") from None
    if not folder:
        raise DataError(f"{where}, field 'path': found an empty path, expected a folder name")
    others = [n for n in lines_of[folder] if n != line]
    if others:
        raise DataError(
            f"{where}, field 'path': {folder!r} is also listed on line(s) "
            f"{', '.join(map(str, others))}; expected each person folder once"
        )
    on_disk = _person_folder(images_dir, folder)
    files = _scan_person(images_dir / on_disk, f"listed on {where}, field 'path'")
    return [
        {
            "image_id": f"{folder}/{stem}",
            "path": str(file),
            "person_id": person_id,
            "folder": folder,
            "stem": stem,
            "gender": values["gender"],
            "race": str(rec.race).strip(),
            "age": values["age"],
        }
        for stem, file in files.items()
    ]


def _person_folder(images_dir: Path, folder: str) -> str:
    """The name on disk of the person folder train.csv calls ``folder``: itself, or the one
    folder equal to it after Unicode normalisation (macOS writes names decomposed, NFD, while
    a train.csv is usually composed, NFC: the two look identical and compare unequal)."""
    if (images_dir / folder).is_dir():
        return folder
    want = unicodedata.normalize("NFC", folder)
    if want == folder and folder.isascii():
        return folder  # nothing to normalise: "not found" is said by the scan
    same = [
        n
        for n in sorted(os.listdir(images_dir))
        if unicodedata.normalize("NFC", n) == want and (images_dir / n).is_dir()
    ]
    if len(same) > 1:
        raise DataError(
            f"{images_dir}: folders {', '.join(map(repr, same))} all read {folder!r} "
            "(they differ only in Unicode normalisation, NFC / NFD); keep one of them"
        )
    return same[0] if same else folder


def _scan_person(folder: Path, listed: str) -> dict[str, Path]:
    """Map each of the seven stems to its one file, skipping dot-files and non-images."""
    if not folder.is_dir():
        raise DataError(f"{folder}: person folder not found ({listed})")
    found: dict[str, list[str]] = {}
    for name in sorted(os.listdir(folder)):
        if name.startswith(".") or not (folder / name).is_file():
            continue  # macOS ._* forks, .DS_Store, sub-folders
        stem, ext = os.path.splitext(name)
        if ext.lower() not in IMAGE_EXTENSIONS:
            if stem in STEM_MASK:
                raise DataError(
                    f"{folder / name}: unsupported extension {ext!r} ({listed}); "
                    f"expected {', '.join(IMAGE_EXTENSIONS)} in any case"
                )
            continue
        if stem not in STEM_MASK:
            raise DataError(
                f"{folder / name}: unexpected picture {stem!r} ({listed}); "
                f"expected only {', '.join(STEMS)}"
            )
        found.setdefault(stem, []).append(name)
    doubles = {s: names for s, names in found.items() if len(names) > 1}
    if doubles:
        stem, names = next(iter(doubles.items()))
        raise DataError(
            f"{folder}: two files for {stem!r}: {', '.join(names)} ({listed}); expected one"
        )
    missing = [s for s in STEMS if s not in found]
    if missing:
        raise DataError(
            f"{folder}: missing picture(s) {', '.join(missing)} ({listed}); "
            f"expected {', '.join(STEMS)} with extension {'/'.join(IMAGE_EXTENSIONS)}"
        )
    return {stem: folder / found[stem][0] for stem in STEMS}


def _count_images(folder: Path) -> int:
    if not folder.is_dir():
        return 0
    return sum(
        1
        for n in os.listdir(folder)
        if not n.startswith(".") and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS
    )


def _report_problems(problems: list[str], skipped_images: int, strict: bool) -> None:
    shown = "\n  ".join(problems[:_SHOWN_REASONS])
    extra = len(problems) - _SHOWN_REASONS
    more = f"\n  ... and {extra} more" if extra > 0 else ""
    if strict:
        hint = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise DataError(
            f"{problems[0]}{hint}; pass strict=False (training: --no-strict-data) to skip "
            "such people"
        )
    warnings.warn(
        f"read_train skipped {len(problems)} people ({skipped_images} images) with problems:"
        f"\n  {shown}{more}",
        stacklevel=3,
    )


def _to_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    derived = ("mask", "age_group", "label")
    frame = pd.DataFrame(list(rows), columns=[c for c in FRAME_COLUMNS if c not in derived])
    frame["mask"] = frame["stem"].map(STEM_MASK)
    for col in ("gender", "age", "mask"):
        frame[col] = frame[col].astype(np.int64)
    frame["age_group"] = age_to_group(frame["age"].to_numpy())
    frame["label"] = encode(
        frame["mask"].to_numpy(), frame["gender"].to_numpy(), frame["age_group"].to_numpy()
    )
    order = frame["stem"].map(_STEM_ORDER)
    frame = frame.assign(_order=order).sort_values(["folder", "_order"], kind="stable")
    return frame.drop(columns="_order").reset_index(drop=True)[list(FRAME_COLUMNS)]
