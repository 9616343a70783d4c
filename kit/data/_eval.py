"""Reading the evaluation set: ``eval/info.csv`` and the flat ``eval/images/`` folder."""

from __future__ import annotations

import os
import unicodedata
import warnings

import pandas as pd

from kit.data._common import IMAGE_EXTENSIONS, DataError, data_root, read_csv_checked

__all__ = ["read_eval"]

_SHOWN = 5


def read_eval(data_dir: str | os.PathLike[str], strict: bool = True) -> pd.DataFrame:
    """``image_id`` (= ``ImageID``), ``ImageID``, absolute ``path``, in info.csv row order.

    A file named in info.csv may differ from its ``ImageID`` only in letter case, Unicode
    normalisation (NFC / NFD) or by a missing image extension. Missing files are an error, or
    with ``strict=False`` dropped with one warning; duplicated ImageIDs are always an error (a
    submission could not be written).
    """
    root = data_root(data_dir)
    csv_path = root / "eval" / "info.csv"
    info = read_csv_checked(csv_path, ("ImageID",))
    images_dir = root / "eval" / "images"
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: folder not found (expected the evaluation images)")
    ids = info["ImageID"].str.strip()
    _check_ids(ids, csv_path)

    files = _index(os.listdir(images_dir))
    names = [_find(image_id, files) for image_id in ids]
    missing = [i for i, name in enumerate(names) if name is None]
    if missing:
        first = "; ".join(
            f"line {ids.index[i]}: {images_dir / ids.iloc[i]} not found" for i in missing[:_SHOWN]
        )
        msg = f"{csv_path}, field 'ImageID': {len(missing)} of {len(ids)} images missing ({first})"
        if strict:
            raise DataError(msg + "; pass strict=False to drop them")
        warnings.warn(f"read_eval dropped {len(missing)} rows: {msg}", stacklevel=2)
    keep = [i for i, name in enumerate(names) if name is not None]
    kept_ids = [ids.iloc[i] for i in keep]
    return pd.DataFrame(
        {
            "image_id": kept_ids,
            "ImageID": kept_ids,
            "path": [str(images_dir / names[i]) for i in keep],  # type: ignore[operator]
        }
    )


def _check_ids(ids: pd.Series, csv_path: os.PathLike[str]) -> None:
    empty = [line for line, v in ids.items() if not v]
    if empty:
        raise DataError(
            f"{csv_path} line {empty[0]}, field 'ImageID': found an empty value, "
            f"expected an image file name"
        )
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        value = dup.iloc[0]
        lines = [str(line) for line, v in ids.items() if v == value]
        raise DataError(
            f"{csv_path} lines {', '.join(lines)}, field 'ImageID': {value!r} is listed "
            f"{len(lines)} times ({dup.nunique()} duplicated ids in all); expected each once"
        )


def _index(names: list[str]) -> tuple[dict[str, str], ...]:
    """Three lookups to a file name: by exact name, by lower-cased name, by lower-cased stem."""
    exact: dict[str, str] = {}
    by_lower: dict[str, str] = {}
    by_stem: dict[str, str] = {}
    for name in sorted(names):
        if name.startswith("."):
            continue
        stem, ext = os.path.splitext(name)
        exact[name] = name
        by_lower.setdefault(_folded(name), name)
        if ext.lower() in IMAGE_EXTENSIONS:
            by_stem.setdefault(_folded(stem), name)
    return exact, by_lower, by_stem


def _folded(name: str) -> str:
    """``name`` as its lookups compare it: lower case, Unicode NFC (macOS writes file names
    decomposed, NFD; spreadsheets and most tools write NFC)."""
    return unicodedata.normalize("NFC", name).lower()


def _find(image_id: str, files: tuple[dict[str, str], ...]) -> str | None:
    exact, by_lower, by_stem = files
    return exact.get(image_id) or by_lower.get(_folded(image_id)) or by_stem.get(_folded(image_id))
