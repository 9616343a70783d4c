"""Face crop: face boxes from a registry of detectors, stored once per data folder.

``--crop-mode face`` crops every picture around its face (``--face-margin`` on each side, the
network's aspect ratio) instead of the fixed centre share; a picture without a detected face
gets the centre crop, and the run reports how many did. Boxes come from ``--face-detector``
(:data:`FACE_DETECTORS`: ``skimage``, ``opencv``, ``mtcnn``, ``boxes`` or a registered one),
are computed once per data folder by :func:`face_boxes` and stored beside the image cache.

``python -m kit.faces DATA_DIR [--preview out.png]`` precomputes them (docs/faces.md).
"""

from __future__ import annotations

from typing import Any

# The detectors and the store load torch and albumentations, which ``python -m kit.faces
# --help`` does not need: their names are imported from them on first use.
_DETECTORS = ["FACE_DETECTORS", "FaceDetector", "image_id", "read_boxes", "register_face_detector"]
_STORE = ["boxes_path", "face_boxes", "folder_pictures", "other_crop", "prepared_loader"]

__all__ = sorted([*_DETECTORS, *_STORE])


def __getattr__(name: str) -> Any:
    if name in _DETECTORS:
        from kit.faces import detectors as module
    elif name in _STORE:
        from kit.faces import store as module
    else:
        raise AttributeError(f"module 'kit.faces' has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
