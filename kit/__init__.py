"""kit: small, independent pieces for the 18-class mask / gender / age competition.

The names a teammate reaches for are re-exported here (``kit.fit``, ``kit.Config``,
``kit.read_train``, ...); each lives in its own small module and can be imported from there
too. Imports are lazy, so ``import kit`` is instant and loads torch only when needed.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(
        [
            "NUM_CLASSES",
            "AgeGroup",
            "Gender",
            "Mask",
            "age_to_group",
            "class_name",
            "decode",
            "encode",
            "heads_from_joint",
            "joint_from_heads",
        ],
        "kit.labels",
    ),
    **dict.fromkeys(
        [
            "DataError",
            "load_fixes",
            "make_fixture",
            "read_eval",
            "read_train",
            "verify_images",
        ],
        "kit.data",
    ),
    **dict.fromkeys(["holdout", "person_folds"], "kit.splits"),
    **dict.fromkeys(["build_loss", "build_multihead_loss", "register_loss"], "kit.losses"),
    **dict.fromkeys(
        ["accuracy", "confusion_matrix", "head_f1", "macro_f1", "report", "summarize"],
        "kit.metrics",
    ),
    **dict.fromkeys(["Config", "parse_args"], "kit.config"),
    **dict.fromkeys(["Registry"], "kit.registry"),
    **dict.fromkeys(["create_model", "register_head", "to_probs"], "kit.models"),
    **dict.fromkeys(["build_transforms"], "kit.transforms"),
    **dict.fromkeys(["fit", "is_main_process"], "kit.train"),
    **dict.fromkeys(["Run", "read_run", "write_submission"], "kit.runfolder"),
    **dict.fromkeys(["predict"], "kit.inference"),
    **dict.fromkeys(["search_weights"], "kit.ensemble"),
    **dict.fromkeys(["score_submission"], "kit.score"),
    **dict.fromkeys(["tune"], "kit.tune"),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
