"""Decoding a picture the way an image viewer shows it: ``load_rgb(path) -> uint8 RGB``.

Cameras and editors write more than 8-bit RGB: phones store the sensor's pixels with an EXIF
orientation tag (1-8) that a viewer applies, editors write CMYK JPEGs, 16-bit, grayscale,
palette and transparent PNGs. Each is decoded to what a viewer shows (orientation applied,
16-bit scaled to 8 bits rather than clipped, transparent areas over white, as on a web page),
and any other pixel mode (32-bit float, say) is refused naming the file.
:func:`picture_problem` is the same policy checked from the header alone, so ``verify_images``
refuses such a file before training starts.
"""

from __future__ import annotations

import struct

import numpy as np
from PIL import Image, ImageOps

__all__ = ["BAD_IMAGE_ERRORS", "load_rgb", "picture_problem", "to_rgb"]

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
    """Why ``image`` (opened, not necessarily decoded) cannot be shown as a viewer shows it,
    or None. (Damaged EXIF data is no reason: PIL, like viewers, then shows it unrotated.)"""
    if image.mode not in _DIRECT | _ALPHA | _HIGH_BIT:
        return (
            f"pixel mode {image.mode!r} is not a camera or editor picture kit can decode as a "
            "viewer shows it; save it again as an 8-bit RGB JPEG or PNG"
        )
    return None


def to_rgb(image: Image.Image) -> np.ndarray:
    """uint8 (H, W, 3) of ``image`` as a viewer shows it (see the module's docstring)."""
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
    """Decode one picture to a uint8 RGB array (H, W, 3) as a viewer shows it (EXIF
    orientation applied), naming the file if it is unreadable or cannot be shown so."""
    try:
        with Image.open(path) as image:
            return to_rgb(image)
    except BAD_IMAGE_ERRORS as err:
        raise OSError(f"cannot read image {path}: {type(err).__name__}: {err}") from err
