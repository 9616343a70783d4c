"""A fast check that every image file of a frame can be read, before a long training starts."""

from __future__ import annotations

import os
import warnings

import pandas as pd
from PIL import Image

from kit.data._common import DataError
from kit.data.decode import picture_problem, to_rgb

__all__ = ["verify_images"]

# Image.verify() only parses headers, so a JPEG or PNG cut short passes it; their end
# markers are what a complete file always carries. Looked for near the end because some
# writers pad a few bytes after the marker.
_END_MARKERS: dict[str, bytes] = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82"}
_TAIL_BYTES = 1024
_SHOWN = 5


#: What a strict check suggests unless the caller knows better (the eval set cannot drop rows).
DROP_FIX = "replace them, or pass strict=False (training: --no-strict-data) to drop them"


def verify_images(
    df: pd.DataFrame, strict: bool = True, decode: bool = False, fix: str = DROP_FIX
) -> pd.DataFrame:
    """Check each file of ``df.path``: not empty, an image PIL can parse, not truncated, in a
    mode and orientation :func:`kit.data.dataset.load_rgb` decodes as a viewer shows it.

    Bad files raise a :class:`DataError` naming the first few and then ``fix``, or with
    ``strict=False`` are dropped with one warning (the returned frame has a fresh index).
    ``decode=True`` also decodes every pixel (slower; catches corrupt data inside an otherwise
    complete file).
    """
    if "path" not in df.columns:
        raise DataError(f"verify_images: frame has no 'path' column (found {list(df.columns)})")
    problems = [_problem(str(path), decode) for path in df["path"]]
    bad = [(path, why) for path, why in zip(df["path"], problems, strict=True) if why]
    if not bad:
        return df
    shown = "; ".join(f"{path}: {why}" for path, why in bad[:_SHOWN])
    more = f"; ... and {len(bad) - _SHOWN} more" if len(bad) > _SHOWN else ""
    msg = f"{len(bad)} of {len(df)} image files cannot be used ({shown}{more})"
    if strict:
        raise DataError(f"{msg}; {fix}")
    warnings.warn(
        f"verify_images dropped {len(bad)} of {len(df)} image files that cannot be used "
        f"({shown}{more})",
        stacklevel=2,
    )
    keep = [why is None for why in problems]
    return df.loc[keep].reset_index(drop=True)


def _problem(path: str, decode: bool) -> str | None:
    """Why the file at ``path`` cannot be used, or None if it is fine."""
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
    if marker is not None:
        with open(path, "rb") as fh:
            fh.seek(max(0, size - _TAIL_BYTES))
            ends = marker in fh.read()
        if not ends and fmt == "JPEG":  # rare: walk the file for the picture's own end
            with open(path, "rb") as fh:
                ends = jpeg_ends(fh.read())
        if not ends:
            return f"truncated {fmt} file (no end marker in its last {_TAIL_BYTES} bytes)"
    return None


def jpeg_ends(data: bytes) -> bool:
    """Whether the JPEG in ``data`` reaches its end-of-image marker, whatever follows it.

    Phones append a video to a "motion photo" (and other tools their own data) after the
    picture's end, as viewers ignore it; so the marker need not be near the file's end. The
    walk follows the segments from the start (a length each; an EXIF thumbnail's own end
    marker is inside one) and, after each start-of-scan, the compressed data up to the next
    marker (``FF00`` is a stuffed byte, ``FFD0``-``FFD7`` restart markers)."""
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
