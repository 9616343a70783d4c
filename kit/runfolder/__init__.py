"""The run folder, kit's contract between training and everything after it (docs/run-folder.md).

Every file name, column list, writer and reader of a run folder lives in this package:
training writes through :mod:`kit.runfolder.files` and :mod:`kit.runfolder.kfold`; the
ensembler, the ledger and the scorer read through :mod:`kit.runfolder.read`.
"""

from kit.runfolder.files import (
    BEST,
    CONFIG,
    ENV,
    EPOCH_COLUMNS,
    LAST,
    METRICS,
    PROB_COLUMNS,
    STATUS,
    SUBMISSION,
    SUMMARY,
    TEST_PROBS,
    VAL_PROBS,
    create_run_dir,
    env_info,
    now,
    package_version,
    read_metrics,
    write_metrics,
    write_probs,
    write_status,
    write_submission,
)
from kit.runfolder.kfold import find_fold_run, mean_test_probs, merge_oof, write_parent
from kit.runfolder.read import (
    Run,
    Split,
    read_run,
    read_submission,
    read_test_probs,
    read_val_probs,
    running_pid,
    writer_alive,
)
from kit.runfolder.tracking import (
    CONFUSION_PNG,
    CURVES_PNG,
    TRACKER_IDS,
    read_tracker_ids,
    write_tracker_id,
)

__all__ = [
    "BEST",
    "CONFIG",
    "CONFUSION_PNG",
    "CURVES_PNG",
    "ENV",
    "EPOCH_COLUMNS",
    "LAST",
    "METRICS",
    "PROB_COLUMNS",
    "STATUS",
    "SUBMISSION",
    "SUMMARY",
    "TEST_PROBS",
    "TRACKER_IDS",
    "VAL_PROBS",
    "Run",
    "Split",
    "create_run_dir",
    "env_info",
    "find_fold_run",
    "mean_test_probs",
    "merge_oof",
    "now",
    "package_version",
    "read_metrics",
    "read_run",
    "read_submission",
    "read_test_probs",
    "read_tracker_ids",
    "read_val_probs",
    "running_pid",
    "write_metrics",
    "write_parent",
    "write_probs",
    "write_status",
    "write_submission",
    "write_tracker_id",
    "writer_alive",
]
