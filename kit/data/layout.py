"""Reading the competition layout (``train/train.csv`` + person folders, ``eval/info.csv`` +
``eval/images/``) and checking that every image file of a frame can be read.

The readers check the layout up front and stop with a :class:`DataError` naming the file, row
and field, what was found and what was expected, instead of failing mid-training.

Pictures are decoded as an image viewer shows them (:func:`load_rgb`): EXIF orientation (phones
store the sensor's pixels and a tag 1-8) applied, CMYK, grayscale and palette converted, 16-bit
scaled to 8 bits rather than clipped, transparent areas over white (as on a web page); any other
pixel mode (32-bit float, say) is refused naming the file. :func:`picture_problem` is the same
policy checked from the header alone, so :func:`verify_images` refuses such a file up front.
"""

from __future__ import annotations

import logging
import os
import struct
import unicodedata
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from kit.data._common import (
    FRAME_COLUMNS,
    IMAGE_EXTENSIONS,
    SHOWN,
    STEM_MASK,
    STEMS,
    DataError,
    data_root,
    listed,
    parse_age,
    parse_gender,
    read_csv_checked,
    with_labels,
)
from kit.data.fixes import FixSpec, apply_fixes, load_fixes

__all__ = [
    "BAD_IMAGE_ERRORS",
    "DROP_FIX",
    "DataError",
    "jpeg_ends",
    "load_rgb",
    "picture_problem",
    "read_eval",
    "read_train",
    "to_rgb",
    "verify_images",
]


#: What PIL raises for a missing, empty, cut-short or corrupt file (not only OSError).
BAD_IMAGE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    Image.DecompressionBombError,
)
#: Modes PIL converts to RGB exactly as they are shown (CMYK: PIL's conversion, no profile).
_DIRECT = {"RGB", "L", "1", "P", "CMYK", "YCbCr", "LAB", "HSV"}
_ALPHA = {"RGBA", "RGBa", "LA", "La", "PA"}
_HIGH_BIT = {"I;16", "I;16L", "I;16B", "I;16N", "I"}  # 16-bit grayscale PNGs open as these
_WHITE = (255, 255, 255, 255)


def picture_problem(image: Image.Image) -> str | None:
    """Why ``image`` (opened, not necessarily decoded) cannot be shown as a viewer shows it, or
    None. (Damaged EXIF data is no reason: PIL, like viewers, then shows it unrotated.)"""
    if image.mode not in _DIRECT | _ALPHA | _HIGH_BIT:
        return (
            f"pixel mode {image.mode!r} is not a camera or editor picture kit can decode as a "
            "viewer shows it; save it again as an 8-bit RGB JPEG or PNG"
        )
    return None


def to_rgb(image: Image.Image) -> np.ndarray:
    """uint8 (H, W, 3) of ``image`` as a viewer shows it."""
    problem = picture_problem(image)
    if problem is not None:
        raise ValueError(problem)
    image = ImageOps.exif_transpose(image)
    if image.mode in _HIGH_BIT:
        # PNG holds at most 16 bits (PIL opens 16-bit gray as I;16 or I); RGB would clip at 255
        values = np.asarray(image, dtype=np.int64).clip(0, 65535)
        gray = ((values * 255 + 32767) // 65535).astype(np.uint8)  # 16 -> 8 bits, rounded
        return np.repeat(gray[..., None], 3, axis=2)
    if image.mode in _ALPHA or "transparency" in image.info:
        rgba = image.convert("RGBA")
        if rgba.getextrema()[3][0] < 255:  # some pixel is see-through: show it over white
            rgba = Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba)
        image = rgba
    return np.asarray(image.convert("RGB"))


def load_rgb(path: str) -> np.ndarray:
    """One picture as uint8 RGB (H, W, 3), as a viewer shows it; OSError naming the file."""
    try:
        with Image.open(path) as image:
            return to_rgb(image)
    except BAD_IMAGE_ERRORS as err:
        raise OSError(f"cannot read image {path}: {type(err).__name__}: {err}") from err


TRAIN_COLUMNS: tuple[str, ...] = ("id", "gender", "race", "age", "path")
_STEM_ORDER = {stem: i for i, stem in enumerate(STEMS)}
_log = logging.getLogger("kit")


def read_train(
    data_dir: str | os.PathLike[str], fixes: FixSpec = None, strict: bool = True
) -> pd.DataFrame:
    """One row per training image (columns: docs/architecture.md), sorted by folder, stem.

    ``fixes``: a :func:`~kit.data.load_fixes` spec; the applied ones are logged and kept in
    ``df.attrs["fixes"]``. ``strict=False`` skips people with problems (missing picture, bad
    age, ...) with one warning; a missing data folder, train.csv or column is always an error.
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
    """The name on disk of train.csv's ``folder``: itself, or the one folder equal to it after
    Unicode normalisation (macOS writes names decomposed, NFD; a train.csv is usually NFC)."""
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
    if strict:
        hint = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise DataError(
            f"{problems[0]}{hint}; pass strict=False (training: --no-strict-data) to skip "
            "such people"
        )
    shown = listed(problems, "\n  ")
    warnings.warn(
        f"read_train skipped {len(problems)} people ({skipped_images} images) with problems:"
        f"\n  {shown}",
        stacklevel=3,
    )


def _to_frame(rows: Iterable[dict[str, Any]]) -> pd.DataFrame:
    derived = ("mask", "age_group", "label")
    frame = pd.DataFrame(list(rows), columns=[c for c in FRAME_COLUMNS if c not in derived])
    frame["mask"] = frame["stem"].map(STEM_MASK)
    for col in ("gender", "age", "mask"):
        frame[col] = frame[col].astype(np.int64)
    frame = with_labels(frame)
    order = frame["stem"].map(_STEM_ORDER)
    frame = frame.assign(_order=order).sort_values(["folder", "_order"], kind="stable")
    return frame.drop(columns="_order").reset_index(drop=True)[list(FRAME_COLUMNS)]


def read_eval(data_dir: str | os.PathLike[str], strict: bool = True) -> pd.DataFrame:
    """``image_id`` (= ``ImageID``), ``ImageID``, absolute ``path``, in info.csv row order.

    A file may differ from its ``ImageID`` in letter case, Unicode normalisation or by a missing
    extension. Missing files are an error (``strict=False``: dropped with one warning);
    duplicated ImageIDs always (a submission could not be written).
    """
    root = data_root(data_dir)
    csv_path = root / "eval" / "info.csv"
    info = read_csv_checked(csv_path, ("ImageID",))
    images_dir = root / "eval" / "images"
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: folder not found (expected the evaluation images)")
    ids = info["ImageID"].str.strip()
    _check_ids(ids, csv_path)

    exact, by_name, by_stem = _index(os.listdir(images_dir))
    names = [
        exact.get(i) or by_name.get(_folded(i)) or by_stem.get(_folded(i)) for i in ids.tolist()
    ]
    missing = [i for i, name in enumerate(names) if name is None]
    if missing:
        first = "; ".join(
            f"line {ids.index[i]}: {images_dir / ids.iloc[i]} not found" for i in missing[:SHOWN]
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


def _index(names: list[str]) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
    """Three lookups to a file name: by exact name, by folded name, by folded image stem."""
    exact: dict[str, str] = {}
    by_name: dict[str, str] = {}
    by_stem: dict[str, str] = {}
    for name in sorted(n for n in names if not n.startswith(".")):
        stem, ext = os.path.splitext(name)
        exact[name] = name
        by_name.setdefault(_folded(name), name)
        if ext.lower() in IMAGE_EXTENSIONS:
            by_stem.setdefault(_folded(stem), name)
    return exact, by_name, by_stem


def _folded(name: str) -> str:
    """Lower case, Unicode NFC (macOS writes file names decomposed, NFD; most tools NFC)."""
    return unicodedata.normalize("NFC", name).lower()


# Image.verify() only parses headers, so a JPEG or PNG cut short passes it; a complete file ends
# with its end marker (some writers pad a few bytes after it).
_END_MARKERS: dict[str, bytes] = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}
_TAIL_BYTES = 1024


#: What a strict check suggests unless the caller knows better (the eval set cannot drop rows).
DROP_FIX = "replace them, or pass strict=False (training: --no-strict-data) to drop them"


def verify_images(
    df: pd.DataFrame, strict: bool = True, decode: bool = False, fix: str = DROP_FIX
) -> pd.DataFrame:
    """Check each file of ``df.path``: not empty, an image PIL can parse, not truncated, in a
    mode :func:`load_rgb` decodes. Bad files raise a :class:`DataError` naming the first few
    and then ``fix``, or with ``strict=False`` are dropped with one warning (fresh index).
    ``decode=True`` also decodes every pixel (slower; catches corrupt data in a whole file).
    """
    if "path" not in df.columns:
        raise DataError(f"verify_images: frame has no 'path' column (found {list(df.columns)})")
    problems = [_problem(str(path), decode) for path in df["path"]]
    bad = [(path, why) for path, why in zip(df["path"], problems, strict=True) if why]
    if not bad:
        return df
    shown = listed([f"{path}: {why}" for path, why in bad], "; ")
    msg = f"{len(bad)} of {len(df)} image files cannot be used ({shown})"
    if strict:
        raise DataError(f"{msg}; {fix}")
    warnings.warn(
        f"verify_images dropped {len(bad)} of {len(df)} image files that cannot be used ({shown})",
        stacklevel=2,
    )
    keep = [why is None for why in problems]
    return df.loc[keep].reset_index(drop=True)


def _problem(path: str, decode: bool) -> str | None:
    try:
        size = os.path.getsize(path)
    except OSError as err:
        return f"cannot be read ({err.strerror or err})"
    if size == 0:
        return "empty file (0 bytes)"
    try:
        with Image.open(path) as image:
            fmt = image.format or ""
            image.verify()
        with Image.open(path) as image:  # verify() leaves the image unusable: open it again
            problem = picture_problem(image)
            if decode and problem is None:
                to_rgb(image)
    except Exception as err:  # PIL raises many types (OSError, SyntaxError, struct.error...)
        return f"not a readable image ({type(err).__name__}: {err})"
    if problem is not None:
        return problem
    marker = _END_MARKERS.get(fmt)
    if marker is None:
        return None
    with open(path, "rb") as fh:
        fh.seek(max(0, size - _TAIL_BYTES))
        ends = marker in fh.read()
        if not ends and fmt == "JPEG":  # rare: walk the file for the picture's own end
            fh.seek(0)
            ends = jpeg_ends(fh.read())
    return None if ends else f"truncated {fmt} file (no end marker in its last {_TAIL_BYTES} bytes)"


def jpeg_ends(data: bytes) -> bool:
    """Whether the JPEG in ``data`` reaches its end-of-image marker, whatever follows it (phones
    append a video to a "motion photo" after the picture's end). The walk follows the segments
    from the start (a length each; an EXIF thumbnail's own end marker is inside one) and, after
    each start-of-scan, the compressed data up to the next marker (``FF00`` is a stuffed byte,
    ``FFD0``-``FFD7`` restart markers)."""
    if not data.startswith(b"\xff\xd8"):
        return False
    i, n = 2, len(data)
    while i + 1 < n:
        if data[i] != 0xFF:
            return False  # damaged: a segment should start here
        code = data[i + 1]
        if code == 0xD9:
            return True
        if code == 0xFF or 0xD0 <= code <= 0xD7 or code == 0x01:  # fill byte, no length
            i += 1 if code == 0xFF else 2
            continue
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
        if code == 0xDA:  # start of scan: its compressed data runs to the next real marker
            while True:
                i = data.find(b"\xff", i)
                if i < 0 or i + 1 >= n:
                    return False
                if data[i + 1] == 0x00 or 0xD0 <= data[i + 1] <= 0xD7:
                    i += 2
                elif data[i + 1] == 0xFF:
                    i += 1
                else:
                    break
    return False
