"""Pictures as cameras and editors write them are decoded as an image viewer shows them, by the
loader, the picture cache and the pre-training check alike, or refused naming the file.

Each picture is written the way its source writes it (EXIF orientation tags in a JPEG or PNG,
a CMYK JPEG, 16-bit and palette PNGs), and the expected pixels are computed here with numpy
from what the format specifies, not with the decoder under test.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from kit.config import Config
from kit.data import DataError, verify_images
from kit.data.dataset import load_rgb
from kit.data.pictures import LOADER_VERSION, build_run_cache, cache_extra, prepare_file
from tests._triggers import assert_documented

#: An asymmetric 8-bit picture (H=12, W=20): every corner and every row differ.
UPRIGHT = np.stack(
    [
        np.add.outer(np.arange(12) * 20, np.zeros(20)),
        np.add.outer(np.zeros(12), np.arange(20) * 12),
        np.add.outer(np.arange(12) * 3, np.arange(20) * 5),
    ],
    axis=2,
).astype(np.uint8)

#: What a viewer shows of the stored pixels ``s`` under each EXIF orientation (EXIF 2.3, 4.6.4).
VIEW = {
    1: lambda s: s,
    2: lambda s: s[:, ::-1],  # mirrored left-right
    3: lambda s: s[::-1, ::-1],  # rotated 180
    4: lambda s: s[::-1, :],  # mirrored top-bottom
    5: lambda s: s.transpose(1, 0, 2),  # mirrored along the main diagonal
    6: lambda s: np.rot90(s, -1),  # rotated 90 clockwise (a phone held upright)
    7: lambda s: np.rot90(s, -1)[::-1, :],  # mirrored along the other diagonal
    8: lambda s: np.rot90(s, 1),  # rotated 90 counter-clockwise
}


def stored_for(orientation: int) -> np.ndarray:
    """The pixels a camera stores so that a viewer applying ``orientation`` shows UPRIGHT."""
    for candidate in (
        UPRIGHT,
        UPRIGHT[:, ::-1],
        UPRIGHT[::-1, ::-1],
        UPRIGHT[::-1, :],
        UPRIGHT.transpose(1, 0, 2),
        np.rot90(UPRIGHT, 1),
        np.rot90(UPRIGHT[::-1, :], 1),
        np.rot90(UPRIGHT, -1),
    ):
        if np.array_equal(VIEW[orientation](candidate), UPRIGHT):
            return np.ascontiguousarray(candidate)
    raise AssertionError(f"no stored picture for orientation {orientation}")


def _write(path: Path, image: Image.Image, **params) -> Path:
    image.save(path, **params)
    return path


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation  # Orientation
    exif[0x010F] = "PhoneMaker"  # Make: a camera's file, not a bare tag
    return exif


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_like_a_viewer(orientation: int, tmp_path: Path):
    stored = stored_for(orientation)
    png = _write(tmp_path / "p.png", Image.fromarray(stored), exif=_exif(orientation))
    assert np.array_equal(load_rgb(str(png)), UPRIGHT)  # lossless: exactly the upright picture
    jpeg = _write(tmp_path / "p.jpg", Image.fromarray(stored), exif=_exif(orientation), quality=95)
    shown = load_rgb(str(jpeg))
    assert shown.shape == UPRIGHT.shape
    assert np.abs(shown.astype(int) - UPRIGHT).mean() < 6  # JPEG's loss, not another picture


def test_the_cache_and_the_check_see_a_rotated_photo_upright(tmp_path: Path):
    path = _write(tmp_path / "phone.jpg", Image.fromarray(stored_for(6)), exif=_exif(6))
    frame = pd.DataFrame({"path": [str(path)]})
    assert verify_images(frame, decode=True) is frame
    cfg = Config(crop=(1.0, 1.0), image_size=(12, 20))
    assert prepare_file(str(path), cfg).shape == (12, 20, 3)
    cache = build_run_cache(cfg, [str(path)], tmp_path / "cache", progress=False)
    cached = cache[0]
    assert cached.shape == (12, 20, 3)
    assert np.abs(cached.astype(int) - UPRIGHT).mean() < 6
    # pixels of rotated files changed, so caches built by the old loader must not be reused
    assert LOADER_VERSION >= 2 and cache_extra()["version"] == LOADER_VERSION


def test_a_cmyk_jpeg_from_an_editor_keeps_its_colours(tmp_path: Path):
    path = _write(tmp_path / "print.jpg", Image.fromarray(UPRIGHT).convert("CMYK"), quality=95)
    assert Image.open(path).mode == "CMYK"
    assert np.abs(load_rgb(str(path)).astype(int) - UPRIGHT).mean() < 8


def test_a_16_bit_png_is_scaled_to_8_bits_not_clipped_white(tmp_path: Path):
    deep = (np.arange(12 * 20).reshape(12, 20) * 270).astype(np.uint16)  # 0..64530
    path = _write(tmp_path / "scan.png", Image.fromarray(deep))
    shown = load_rgb(str(path))
    expected = np.round(deep / 257).astype(np.uint8)
    assert np.array_equal(shown, np.repeat(expected[..., None], 3, axis=2))
    assert shown.min() == 0 and shown.max() == 251  # before: every pixel above 255 became 255


def test_grayscale_and_progressive_jpegs_decode_as_themselves(tmp_path: Path):
    gray = UPRIGHT[..., 0]
    path = _write(tmp_path / "g.png", Image.fromarray(gray))
    assert np.array_equal(load_rgb(str(path)), np.repeat(gray[..., None], 3, axis=2))
    baseline = _write(tmp_path / "b.jpg", Image.fromarray(UPRIGHT), quality=95)
    progressive = _write(tmp_path / "p.jpg", Image.fromarray(UPRIGHT), quality=95, progressive=True)
    assert Image.open(progressive).info.get("progressive")
    diff = load_rgb(str(progressive)).astype(int) - load_rgb(str(baseline))
    assert np.abs(diff).max() <= 2


def test_transparent_pngs_are_shown_over_white(tmp_path: Path):
    alpha = np.full((12, 20), 255, np.uint8)
    alpha[:, :10] = 0  # the left half is see-through
    la = np.stack([UPRIGHT[..., 0], alpha], axis=2)
    path = _write(tmp_path / "la.png", Image.fromarray(la, mode="LA"))
    shown = load_rgb(str(path))
    assert (shown[:, :10] == 255).all()
    assert np.array_equal(shown[:, 10:, 0], UPRIGHT[:, 10:, 0])

    palette = Image.fromarray(UPRIGHT[..., 0] // 64).convert("P")  # indices 0..3
    palette.putpalette([10, 20, 30, 200, 0, 0, 0, 200, 0, 0, 0, 200] + [0] * (768 - 12))
    path = _write(tmp_path / "p.png", palette, transparency=0)  # index 0 is see-through
    shown = load_rgb(str(path))
    index = UPRIGHT[..., 0] // 64
    assert (shown[index == 0] == 255).all()  # not the palette's (10, 20, 30) behind it
    assert (shown[index == 1] == [200, 0, 0]).all()

    opaque = np.dstack([UPRIGHT, np.full((12, 20), 255, np.uint8)])
    path = _write(tmp_path / "rgba.png", Image.fromarray(opaque, mode="RGBA"))
    assert np.array_equal(load_rgb(str(path)), UPRIGHT)


def test_a_picture_no_viewer_shows_the_same_way_is_refused_naming_it(tmp_path: Path):
    buf = io.BytesIO()
    Image.fromarray(np.linspace(0, 1, 240, dtype=np.float32).reshape(12, 20)).save(buf, "TIFF")
    path = tmp_path / "renamed.png"
    path.write_bytes(buf.getvalue())  # a float TIFF with a .png name
    with pytest.raises(OSError, match=rf"cannot read image {path}: .*pixel mode 'F'"):
        load_rgb(str(path))
    with pytest.raises(DataError, match=rf"{path}: pixel mode 'F' is not a camera") as err:
        verify_images(pd.DataFrame({"path": [str(path)]}))
    assert_documented("image-mode", str(err.value))
