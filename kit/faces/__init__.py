"""Face crop (``--crop-mode face``): face boxes from a registry of detectors
(:data:`FACE_DETECTORS`, ``--face-detector``), computed once per data folder by
:func:`face_boxes` and stored beside the image cache; a picture without a face gets the centre
crop. ``python -m kit.faces DATA_DIR [--preview out.png]`` precomputes them (docs/faces.md).
"""

from __future__ import annotations

from typing import Any

# imported on first use: the detectors and the store load torch and albumentations, which
# ``python -m kit.faces --help`` does not need
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
