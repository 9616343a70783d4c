"""Face crop: face boxes from a registry of detectors, stored once per data folder.

``--crop-mode face`` crops every picture around its face (``--face-margin`` on each side, the
network's aspect ratio) instead of the fixed centre share; a picture without a detected face
gets the centre crop, and the run reports how many did. Boxes come from ``--face-detector``
(:data:`FACE_DETECTORS`: ``skimage``, ``opencv``, ``mtcnn``, ``boxes`` or a registered one),
are computed once per data folder by :func:`face_boxes` and stored beside the image cache.

``python -m kit.faces DATA_DIR [--preview out.png]`` precomputes them (docs/faces.md).
"""

from kit.faces.detectors import (
    FACE_DETECTORS,
    FaceDetector,
    image_id,
    read_boxes,
    register_face_detector,
)
from kit.faces.store import boxes_path, face_boxes, folder_pictures, other_crop, prepared_loader

__all__ = [
    "FACE_DETECTORS",
    "FaceDetector",
    "boxes_path",
    "face_boxes",
    "folder_pictures",
    "image_id",
    "other_crop",
    "prepared_loader",
    "read_boxes",
    "register_face_detector",
]
