"""kit: small, independent pieces for the 18-class mask / gender / age competition.

The names a teammate reaches for are re-exported here (``kit.fit``, ``kit.Config``,
``kit.read_train``, ...); each lives in its own small module and can be imported from there
too. Imports are lazy, so ``import kit`` is instant and loads torch only when needed.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it, or "module:attribute" where the top-level name differs from
# the module's own (a name there is only unique inside its module: `kit.ensemble` and
# `kit.runs` are packages, and importing one sets that attribute of `kit` to the package).
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
            "read_eval",
            "read_train",
            "verify_images",
        ],
        "kit.data",
    ),
    # from its own module: kit.data would have to import it lazily (`python -m kit.data.fixture`
    # must not find the module already imported by its package)
    "make_fixture": "kit.data.fixture",
    **dict.fromkeys(["build_cache", "load_cache"], "kit.data.cache"),
    "ImageDataset": "kit.data.dataset",
    "PSEUDO_TARGETS": "kit.data.pseudo",
    **dict.fromkeys(["holdout", "person_folds"], "kit.splits"),
    **dict.fromkeys(["build_loss", "build_multihead_loss", "register_loss"], "kit.losses"),
    **dict.fromkeys(
        [
            "accuracy",
            "confusion_matrix",
            "f1_from_confusion",
            "head_f1",
            "macro_f1",
            "report",
            "summarize",
        ],
        "kit.metrics",
    ),
    **dict.fromkeys(["Config", "check_registries"], "kit.config"),
    **dict.fromkeys(["main", "parse_args"], "kit.recipe"),
    "KitError": "kit.errors",
    "run_cli": "kit.cli",
    **dict.fromkeys(["Registry", "UnknownName", "get_registry"], "kit.registry"),
    **dict.fromkeys(["create_model", "register_head", "to_probs"], "kit.models"),
    **dict.fromkeys(["PRESETS", "build_transforms", "normalization"], "kit.transforms"),
    "to_model_input": "kit.model_input",
    **dict.fromkeys(["DEVICE_AUGS", "create_device_aug"], "kit.device_aug"),
    **dict.fromkeys(["TTA", "tta_views"], "kit.tta"),
    **dict.fromkeys(["MIXES", "MIX_PAIRS", "build_mixer"], "kit.mixing"),
    "CROP_MODES": "kit.crops",
    **dict.fromkeys(["Weights", "WeightsUnavailable", "resolve_weights"], "kit.pretrained"),
    **dict.fromkeys(
        ["FACE_DETECTORS", "face_boxes", "prepared_loader", "register_face_detector"],
        "kit.faces",
    ),
    **dict.fromkeys(["fit", "is_main_process"], "kit.train"),
    "build_run_cache": "kit.train.data",
    **dict.fromkeys(["Run", "read_run", "write_submission", "write_test_probs"], "kit.runfolder"),
    **dict.fromkeys(["predict"], "kit.inference"),
    **dict.fromkeys(["predict_run", "read_inputs"], "kit.predict"),
    **dict.fromkeys(["mistakes_sheet", "picture_sheet", "worst_mistakes"], "kit.sheets"),
    **dict.fromkeys(
        ["apply_biases", "calibrate", "fit_biases", "fit_stacker", "search_weights"], "kit.ensemble"
    ),
    "find_suspects": "kit.runs.suspects:find_suspects",
    "ensemble_runs": "kit.ensemble:ensemble",
    "write_ensemble": "kit.ensemble:write",
    "load_runs": "kit.runs:load",
    "runs_table": "kit.runs:table",
    "diff_configs": "kit.runs:diff",
    **dict.fromkeys(["score_submission"], "kit.score"),
    **dict.fromkeys(["tune"], "kit.tune"),
    **dict.fromkeys(["bootstrap_difference", "seed_difference"], "kit.noise"),
    **dict.fromkeys(
        ["TRACKERS", "Pruned", "Tracker", "TrackerSpec", "TrackerStart"], "kit.tracking"
    ),
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    where = _EXPORTS.get(name)
    if where is None:
        raise AttributeError(f"module 'kit' has no attribute {name!r}")
    module, _, attribute = where.partition(":")
    value = getattr(importlib.import_module(module), attribute or name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


class _Facade(types.ModuleType):
    """``kit`` itself. Importing a submodule sets it as an attribute of its package; the
    command module ``kit.predict`` (``python -m kit.predict``) would so hide the exported
    function ``kit.predict``. An exported name keeps its export."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in _EXPORTS:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Facade
