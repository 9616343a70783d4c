"""The names of a run folder (docs/run-folder.md): its files, their columns and keys.

Everything that writes or reads a run folder spells a file or a column only through these.
"""

from __future__ import annotations

from kit.labels import NUM_CLASSES, TASK_SIZES

__all__ = [
    "BEST",
    "CODE_DIR",
    "CONFIG",
    "CURVES_PNG",
    "ENV",
    "EPOCH_COLUMNS",
    "EXTRA_FILES",
    "GIT_DIFF",
    "KFOLD_PARENT_FILES",
    "KFOLD_SUMMARY_KEYS",
    "LAST",
    "METRICS",
    "NOTEBOOK",
    "PROB_COLUMNS",
    "PSEUDO_COLUMNS",
    "PSEUDO_LABELS",
    "PSEUDO_SUMMARY_KEY",
    "RECIPE",
    "REFIT",
    "RUN_FILES",
    "SCORE_COLUMNS",
    "SOURCE_FILES",
    "STATUS",
    "SUBMISSION",
    "SUBMISSION_COLUMNS",
    "SUMMARY",
    "SUMMARY_KEYS",
    "TASK_COLUMNS",
    "TEST_COLUMNS",
    "TEST_KEYS",
    "TEST_PROBS",
    "TRACKER_IDS",
    "TRAIN_TRANSFORM",
    "TRANSFORM_FIELD",
    "VAL_COLUMNS",
    "VAL_CONFUSION",
    "VAL_KEYS",
    "VAL_MISTAKES",
    "VAL_PROBS",
    "prob_columns",
]

# The files of a run folder (docs/run-folder.md).
CONFIG, ENV, STATUS, METRICS, SUMMARY = (
    "config.json",
    "env.json",
    "status.json",
    "metrics.csv",
    "summary.json",
)
VAL_PROBS, TEST_PROBS, SUBMISSION = "val_probs.csv", "test_probs.csv", "submission.csv"
BEST, LAST = "best.pt", "last.pt"
#: The pictures of the end of training: per-epoch curves (loss, macro F1, per-head F1, lr) and
#: the best epoch's validation confusion matrix (``python -m kit.score RUN_DIR`` redraws it).
CURVES_PNG, VAL_CONFUSION = "curves.png", "val_confusion.png"

#: Every file of a complete run folder, in the order of docs/run-folder.md's first table.
RUN_FILES = (
    *(CONFIG, ENV, STATUS, METRICS, LAST, BEST, VAL_PROBS, TEST_PROBS, SUBMISSION, SUMMARY),
    *(CURVES_PNG, VAL_CONFUSION),
)
#: Files a run folder holds only sometimes (docs/run-folder.md's second table says when): the
#: recipe, the uncommitted changes, the mistakes sheet, the eval pictures a pseudo-labelled run
#: trained on, the weights after a refit (``Config.refit``; then test_probs.csv and
#: submission.csv are its), a custom training transform and a notebook's code cells
#: (:mod:`kit.runfolder.code`).
RECIPE, GIT_DIFF, VAL_MISTAKES = "recipe.py", "git.diff", "val_mistakes.png"
PSEUDO_LABELS, REFIT = "pseudo_labels.csv", "refit.pt"
TRAIN_TRANSFORM, NOTEBOOK = "train_transform.json", "notebook.py"
#: The modules of one's own that defined a registered piece of the run (kit.runfolder.code).
CODE_DIR = "code"
EXTRA_FILES = (RECIPE, GIT_DIFF, VAL_MISTAKES, PSEUDO_LABELS, REFIT, TRAIN_TRANSFORM, NOTEBOOK)
#: The run's own code, each an importable Python file: importing it registers again what the
#: run's recipe or notebook registered (a model, head, loss, preset) without training.
SOURCE_FILES = (RECIPE, NOTEBOOK)
#: A K-fold parent's own files: its fold runs hold metrics.csv, the checkpoints, the pictures.
KFOLD_PARENT_FILES = tuple(
    f for f in RUN_FILES if f not in (METRICS, LAST, BEST, CURVES_PNG, VAL_CONFUSION)
)

#: ``p0..p17``: the probability columns of val_probs.csv and test_probs.csv.
PROB_COLUMNS: list[str] = [f"p{k}" for k in range(NUM_CLASSES)]
#: The key columns of val_probs.csv (before the probabilities), and all of its columns.
VAL_KEYS = ("image_id", "person_id", "label", "fold")
VAL_COLUMNS = (*VAL_KEYS, *PROB_COLUMNS)
#: The key column of test_probs.csv (rows in info.csv order), and all of its columns.
TEST_KEYS = ("image_id",)
TEST_COLUMNS = (*TEST_KEYS, *PROB_COLUMNS)
#: The columns of a submission CSV (and of the answers and info.csv it is scored against).
SUBMISSION_COLUMNS = ("ImageID", "ans")
#: The columns of metrics.csv, one row per epoch.
EPOCH_COLUMNS = (
    "epoch",
    "train_loss",
    "val_loss",
    "val_macro_f1",
    "val_accuracy",
    "val_f1_mask",
    "val_f1_gender",
    "val_f1_age",
    "lr",
    "seconds",
)
#: The validation scores a run is compared by: keys of summary.json and columns of
#: metrics.csv (the ledger falls back on the best epoch of an unfinished run).
SCORE_COLUMNS = ("val_macro_f1", "val_f1_mask", "val_f1_gender", "val_f1_age", "val_accuracy")
#: The keys every summary.json holds. ``submission_weights`` names the weights of
#: test_probs.csv and submission.csv: ``best.pt``, ``refit.pt``, or ``folds`` (a K-fold
#: parent's mean of its fold runs).
SUMMARY_KEYS = (
    "name",
    "status",
    "best_epoch",
    "epochs_run",
    "val_macro_f1",
    "val_accuracy",
    "val_f1_mask",
    "val_f1_gender",
    "val_f1_age",
    "confusion",
    "n_val",
    "submission_weights",
    "seconds",
)
#: The columns of pseudo_labels.csv and the summary.json key of a pseudo-labelled run.
PSEUDO_COLUMNS = ("image_id", "label", "p_top")
PSEUDO_SUMMARY_KEY = "pseudo"
#: The keys a K-fold parent's summary.json adds.
KFOLD_SUMMARY_KEYS = ("n_folds", "folds", "cv_note")

#: A run with ``--track`` (docs/tracking.md): each tracker's run id, read back on ``--resume``
#: so the same W&B / MLflow run continues: ``{"wandb": "<run id>", "mlflow": "<run id>"}``,
#: only trackers that have a run id.
TRACKER_IDS = "trackers.json"
#: The setting's name beside the Config's fields in the ledger (``cfg.train_transform``) and in
#: a recipe's "Changes:" line: ``fit``'s argument (kit.runfolder.code records it).
TRANSFORM_FIELD = "train_transform"

#: A per-task run's probability columns (a head that predicts one task only: mask, gender
#: or age) in its val_probs.csv / test_probs.csv instead of ``p0..p17``: ``mask0..mask2``
#: (wear, incorrect, not wear), ``gender0..gender1`` (male, female), ``age0..age2`` (<30,
#: 30-59, >=60), in :mod:`kit.labels` order.
TASK_COLUMNS: dict[str, list[str]] = {
    task: [f"{task}{v}" for v in range(k)] for task, k in TASK_SIZES.items()
}


def prob_columns(task: str | None) -> list[str]:
    """The probability columns of a run's files: ``p0..p17``, or ``task``'s."""
    return PROB_COLUMNS if task is None else TASK_COLUMNS[task]
