"""A stage-2 run's pseudo-labels (docs/run-folder.md, "Pseudo-labels"): which eval pictures
joined its training rows, under which class, and where those labels came from.

- ``pseudo_labels.csv``: ``image_id,label,p_top`` (the predicted class and its probability),
  then, for soft pseudo-labels, ``p0..p17`` (the soft target each picture trained on), one
  row per eval picture that passed the threshold, in info.csv order;
- ``summary.json`` key ``pseudo``: ``sources`` (each probability file read and the run folder
  or K-fold parent it belongs to, None for a loose file), ``threshold``, ``targets``
  (``hard`` or ``soft``), ``n_pictures`` (rows in ``pseudo_labels.csv``) and ``n_eval``
  (eval pictures offered).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kit import io
from kit.runfolder.files import write_probs
from kit.runfolder.names import PROB_COLUMNS, PSEUDO_COLUMNS, PSEUDO_LABELS, TEST_KEYS, TEST_PROBS
from kit.runfolder.predictions import read_checked_csv

__all__ = [
    "pseudo_probs_file",
    "pseudo_record",
    "read_pseudo_labels",
    "write_pseudo_labels",
    "write_test_probs",
]


def pseudo_probs_file(source: str | Path) -> tuple[Path, Path | None]:
    """(test probabilities file, the run folder holding it or None) of a pseudo-label source:
    a run folder or K-fold parent (its ``test_probs.csv``) or a ``test_probs.csv``-shaped file
    (``image_id,p0..p17``, e.g. an ensemble's probabilities)."""
    path = Path(source).expanduser()
    if path.is_dir():
        if not (path / TEST_PROBS).is_file():
            raise FileNotFoundError(
                f"pseudo_labels: {path} has no {TEST_PROBS}; expected a finished run folder or "
                "K-fold parent trained with an eval set, or a CSV of image_id,p0..p17"
            )
        return path / TEST_PROBS, path
    if not path.is_file():
        raise FileNotFoundError(
            f"pseudo_labels: {path} not found; expected a run folder, K-fold parent or a CSV "
            "of image_id,p0..p17"
        )
    return path, path.parent if path.name == TEST_PROBS else None


def write_pseudo_labels(run_dir: Path, rows: pd.DataFrame) -> None:
    """``pseudo_labels.csv`` from ``rows`` (columns :data:`PSEUDO_COLUMNS`, and the soft
    targets ``p0..p17`` when ``rows`` has them), atomically."""
    soft = PROB_COLUMNS if all(c in rows.columns for c in PROB_COLUMNS) else []
    table = rows[[*PSEUDO_COLUMNS, *soft]]
    io.write_text(
        run_dir / PSEUDO_LABELS, table.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    )


def read_pseudo_labels(run_dir: str | Path) -> pd.DataFrame | None:
    """A run's ``pseudo_labels.csv`` (None when the run used none)."""
    path = Path(run_dir) / PSEUDO_LABELS
    if not path.is_file():
        return None
    return read_checked_csv(path, PSEUDO_COLUMNS, ["image_id"])


def pseudo_record(
    sources: list[tuple[Path, Path | None]],
    threshold: float,
    n_pictures: int,
    n_eval: int,
    targets: str = "hard",
) -> dict[str, Any]:
    """The ``summary.json`` entry (key ``kit.runfolder.names.PSEUDO_SUMMARY_KEY``) of a
    pseudo-labelled run; ``sources`` are (probability file, its run folder or None),
    ``targets`` what the pictures trained on (``Config.pseudo_targets``)."""
    return {
        "sources": [
            {"file": str(f.resolve()), "run": None if r is None else str(r.resolve())}
            for f, r in sources
        ],
        "threshold": threshold,
        "targets": targets,
        "n_pictures": n_pictures,
        "n_eval": n_eval,
    }


def write_test_probs(path: str | Path, image_ids: Any, probs: np.ndarray) -> Path:
    """A ``test_probs.csv``-shaped file (``image_id,p0..p17``) of any 18-way test
    probabilities, e.g. an ensemble's (``result.test_ids``, ``result.test_probs``), for
    ``Config.pseudo_labels``."""
    path = Path(path)
    write_probs(path, pd.DataFrame({TEST_KEYS[0]: list(image_ids)}), np.asarray(probs))
    return path
