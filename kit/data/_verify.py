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
            if marker not in fh.read():
                return f"truncated {fmt} file (no end marker in its last {_TAIL_BYTES} bytes)"
    return None
