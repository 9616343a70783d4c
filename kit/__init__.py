"""kit: small, independent pieces for the 18-class mask / gender / age competition.

The names a recipe or notebook reaches for are re-exported here (``kit.fit``, ``kit.Config``,
``kit.read_train``, ...: :data:`__all__`); everything else is reached by its module
(``kit.plot.worst_mistakes``, ``from kit.ensemble import fit_biases``). Imports are lazy, so
``import kit`` is instant and loads torch only when needed; ``kit.<module>`` imports that module
on first use.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

from kit.errors import debug_requested

__version__ = "0.1.0"


def _quiet_interrupt(kind: type[BaseException], value: BaseException, tb: Any) -> None:
    """``sys.excepthook``: Ctrl-C before a command's ``main`` runs (while a recipe or ``python
    -m kit.*`` still imports torch, say) is one line ``interrupted``, as inside
    :func:`kit.cli.run_cli`, not a traceback; Python then exits with 130 itself. ``--debug`` or
    ``KIT_DEBUG=1`` keep the traceback; other exceptions go to the hook that was there."""
    # nothing may be imported here: running an import's code would make Python forget the
    # interrupt and exit with 1 instead of 130
    if issubclass(kind, KeyboardInterrupt) and not debug_requested(sys.argv):
        print("interrupted", file=sys.stderr)
        return
    _previous_hook(kind, value, tb)


if sys.excepthook.__name__ != "_quiet_interrupt":  # once, even if kit is imported again
    _previous_hook, sys.excepthook = sys.excepthook, _quiet_interrupt

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
    **dict.fromkeys(["build_cache", "load_cache"], "kit.data.image_cache"),
    "ImageDataset": "kit.data.dataset",
    "PSEUDO_TARGETS": "kit.data.pseudo",
    **dict.fromkeys(["holdout", "person_folds"], "kit.splits"),
    **dict.fromkeys(["build_loss", "build_multihead_loss"], "kit.losses"),
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
    **dict.fromkeys(["ConfigError", "KitError", "UserCodeError"], "kit.errors"),
    "run_cli": "kit.cli",
    **dict.fromkeys(["Registry", "UnknownName", "get_registry"], "kit.registry"),
    # a recipe's own head or loss registers without importing torch: its --help stays instant
    **dict.fromkeys(["register_head", "register_loss"], "kit.registry"),
    **dict.fromkeys(["create_model", "register_model", "to_probs"], "kit.models"),
    **dict.fromkeys(["PRESETS", "build_transforms", "normalization"], "kit.transforms"),
    "to_model_input": "kit.batch",
    "build_optimizer": "kit.optim",
    **dict.fromkeys(["DEVICE_AUGS", "create_device_aug"], "kit.batch"),
    **dict.fromkeys(["TTA", "tta_views"], "kit.tta"),
    **dict.fromkeys(["MIXES", "MIX_PAIRS", "build_mixer"], "kit.mixing"),
    "CROP_MODES": "kit.transforms",
    **dict.fromkeys(["Weights", "WeightsUnavailable", "resolve_weights"], "kit.models"),
    **dict.fromkeys(
        ["FACE_DETECTORS", "face_boxes", "prepared_loader", "register_face_detector"],
        "kit.faces",
    ),
    **dict.fromkeys(["fit", "is_main_process"], "kit.train"),
    "build_run_cache": "kit.data.pictures",
    **dict.fromkeys(["Run", "read_run", "write_submission", "write_test_probs"], "kit.runfolder"),
    # not `predict`: that is the command module kit.predict (`python -m kit.predict RUN_DIR`)
    "predict_probs": "kit.inference:predict",
    **dict.fromkeys(["predict_run", "read_inputs"], "kit.predict"),
    **dict.fromkeys(["mistakes_sheet", "picture_sheet", "worst_mistakes"], "kit.plot"),
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
    **dict.fromkeys(["bootstrap_difference", "seed_difference"], "kit.metrics"),
    **dict.fromkeys(
        ["TRACKERS", "Pruned", "Tracker", "TrackerSpec", "TrackerStart"], "kit.tracking"
    ),
}

#: The public surface: what a recipe or notebook needs. The other names of _EXPORTS still
#: resolve (``kit.worst_mistakes``), so code written against an earlier kit keeps working, but
#: the docs spell them by their module.
__all__ = [  # noqa: RUF022  (grouped by what a recipe does with them)
    # a run: the config, the command line, training and prediction
    "Config",
    "fit",
    "is_main_process",
    "main",
    "parse_args",
    "predict_probs",
    # the data, the labels and the split
    "AgeGroup",
    "Gender",
    "ImageDataset",
    "Mask",
    "NUM_CLASSES",
    "class_name",
    "decode",
    "encode",
    "holdout",
    "make_fixture",
    "person_folds",
    "read_eval",
    "read_train",
    # one's own pieces
    "PRESETS",
    "build_loss",
    "build_transforms",
    "create_device_aug",
    "create_model",
    "register_face_detector",
    "register_head",
    "register_loss",
    "register_model",
    "to_model_input",
    # scores, run folders, the ledger, ensembles and searches
    "diff_configs",
    "ensemble_runs",
    "load_runs",
    "macro_f1",
    "read_run",
    "runs_table",
    "search_weights",
    "summarize",
    "tune",
    "write_ensemble",
    "write_submission",
    "write_test_probs",
    # what kit raises
    "ConfigError",
    "DataError",
    "KitError",
    "UserCodeError",
]


def __getattr__(name: str) -> Any:
    where = _EXPORTS.get(name)
    if where is None:
        if importlib.util.find_spec(f"kit.{name}") is None:
            raise AttributeError(f"module 'kit' has no attribute {name!r}")
        return importlib.import_module(f"kit.{name}")  # kit.plot without `import kit.plot`
    module, _, attribute = where.partition(":")
    value = getattr(importlib.import_module(module), attribute or name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


# a torchvision of another torch build fails on import with one line, not a timm traceback
importlib.import_module("kit.torch_build").guard_torchvision_import()
