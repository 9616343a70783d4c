"""Face crop: face boxes from a registry of detectors, stored once per data folder.

``--crop-mode face`` crops every picture around its face (``--face-margin`` on each side, the
network's aspect ratio) instead of the fixed centre share; a picture without a detected face
gets the centre crop, and the run reports how many did. Boxes come from ``--face-detector``
(:data:`FACE_DETECTORS`: ``skimage``, ``opencv``, ``mtcnn``, ``boxes`` or a registered one),
are computed once per data folder by :func:`face_boxes` and stored beside the image cache.

``python -m kit.faces DATA_DIR [--preview out.png]`` precomputes them (docs/faces.md).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from kit.config import Config
from kit.data.pictures import FaceBoxes, PreparedLoader
from kit.faces.detectors import (
    FACE_DETECTORS,
    FaceDetector,
    image_id,
    read_boxes,
    register_face_detector,
)
from kit.faces.preview import preview
from kit.faces.store import boxes_path, face_boxes, folder_pictures
from kit.transforms import CROP_MODES

__all__ = [
    "FACE_DETECTORS",
    "FaceDetector",
    "boxes_path",
    "face_boxes",
    "folder_pictures",
    "image_id",
    "other_crop",
    "prepared_loader",
    "preview",
    "read_boxes",
    "register_face_detector",
]


def prepared_loader(
    cfg: Config,
    data_dir: str | os.PathLike[str],
    paths: Sequence[str] = (),
    workers: int = 1,
    progress: bool = True,
) -> PreparedLoader:
    """The loader that prepares pictures as ``cfg`` says, for training and inference alike:
    with ``crop_mode`` face, the boxes of the whole data folder (stored, or detected now), plus
    those of any of ``paths`` outside it."""
    if not CROP_MODES.get(cfg.crop_mode).needs_boxes:
        return PreparedLoader(cfg)
    boxes = face_boxes(cfg, data_dir, workers=workers, progress=progress)
    extra = sorted({os.fspath(p) for p in paths} - set(boxes.boxes))
    if extra:
        more = face_boxes(cfg, Path(data_dir), extra, workers=workers, progress=progress)
        merged = {**boxes.boxes, **more.boxes}
        boxes = FaceBoxes(merged, boxes.file, boxes.detector, {**boxes.scores, **more.scores})
    return PreparedLoader(cfg, boxes)


def other_crop(
    cfg: Config,
    mode: str,
    data_dir: str | os.PathLike[str],
    paths: Sequence[str] = (),
    workers: int = 1,
    progress: bool = True,
    boxes: FaceBoxes | None = None,
) -> tuple[PreparedLoader, frozenset[str]]:
    """The loader of pictures under crop ``mode`` in place of ``cfg.crop_mode`` (TTA
    ``center_face``, ``--crop-mix``), and the ones of ``paths`` it applies to: where either
    crop needs a face box (stored per data folder, detected once), those that have one; else
    all. A picture without a face box keeps the run's own crop: its face crop would only be a
    centre crop again. ``boxes``: those already found for ``paths`` (a face-crop run's own),
    reused instead of read again."""
    other = cfg.replace(crop_mode=mode)
    names = {os.fspath(p) for p in paths}
    with_boxes = [c for c in (other, cfg) if CROP_MODES.get(c.crop_mode).needs_boxes]
    if not with_boxes:
        return PreparedLoader(other), frozenset(names)
    if boxes is None:
        boxes = prepared_loader(with_boxes[0], data_dir, paths, workers, progress).faces
    assert boxes is not None  # a crop that needs boxes always has them
    found = frozenset(p for p in names if boxes.boxes.get(p) is not None)
    return PreparedLoader(other, boxes), found
