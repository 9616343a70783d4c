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

# module -> the names kit re-exports from it (a recipe's own head or loss registers through
# kit.registry without importing torch: its --help stays instant)
_MODULES = {
    "kit.labels": "NUM_CLASSES AgeGroup Gender Mask age_to_group class_name decode encode "
    "heads_from_joint joint_from_heads",
    "kit.data": "DataError load_fixes read_eval read_train verify_images",
    # from its own module: kit.data would have to import it lazily (`python -m kit.data.fixture`
    # must not find the module already imported by its package)
    "kit.data.fixture": "make_fixture",
    "kit.data.image_cache": "build_cache load_cache",
    "kit.data.dataset": "ImageDataset",
    "kit.data.pseudo": "PSEUDO_TARGETS",
    "kit.data.pictures": "build_run_cache",
    "kit.splits": "holdout person_folds",
    "kit.losses": "build_loss build_multihead_loss",
    "kit.metrics": "accuracy confusion_matrix f1_from_confusion head_f1 macro_f1 report summarize "
    "bootstrap_difference seed_difference",
    "kit.config": "Config check_registries",
    "kit.recipe": "main parse_args",
    "kit.errors": "ConfigError KitError UserCodeError",
    "kit.cli": "run_cli",
    "kit.registry": "Registry UnknownName get_registry register_head register_loss",
    "kit.models": "create_model register_model to_probs Weights WeightsUnavailable resolve_weights",
    "kit.transforms": "PRESETS build_transforms normalization CROP_MODES",
    "kit.batch": "to_model_input DEVICE_AUGS create_device_aug",
    "kit.optim": "build_optimizer",
    "kit.tta": "TTA tta_views",
    "kit.mixing": "MIXES MIX_PAIRS build_mixer",
    "kit.faces": "FACE_DETECTORS face_boxes prepared_loader register_face_detector",
    "kit.train": "fit is_main_process",
    "kit.runfolder": "Run read_run write_submission write_test_probs",
    "kit.predict": "predict_run read_inputs",
    "kit.plot": "mistakes_sheet picture_sheet worst_mistakes",
    "kit.ensemble": "apply_biases calibrate fit_biases fit_stacker search_weights",
    "kit.score": "score_submission",
    "kit.tune": "tune",
    "kit.tracking": "TRACKERS Pruned Tracker TrackerSpec TrackerStart",
}
# name -> module that defines it, or "module:attribute" where the top-level name differs from
# the module's own (a name there is only unique inside its module: `kit.ensemble` and
# `kit.runs` are packages, and importing one sets that attribute of `kit` to the package).
_EXPORTS: dict[str, str] = {
    **{name: module for module, names in _MODULES.items() for name in names.split()},
    # not `predict`: that is the command module kit.predict (`python -m kit.predict RUN_DIR`)
    "predict_probs": "kit.inference:predict",
    "find_suspects": "kit.runs.suspects:find_suspects",
    "ensemble_runs": "kit.ensemble:ensemble",
    "write_ensemble": "kit.ensemble:write",
    "load_runs": "kit.runs:load",
    "runs_table": "kit.runs:table",
    "diff_configs": "kit.runs:diff",
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
