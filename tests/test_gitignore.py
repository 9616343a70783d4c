"""Every default store kit or its trackers create in the folder it runs from stays out of git:
``git add .`` after a day of runs commits none of it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: what a documented command leaves in the repository's root, by who writes it
STORES = [
    "mlflow.db",  # --track mlflow without --mlflow-uri (mlflow's default sqlite store)
    "mlruns/0/meta.yaml",  # mlflow's file store
    "mlartifacts/1/x.png",
    "wandb/offline-run-1/files/config.yaml",  # W&B beside the script, and in each run folder
    "runs/20260101_baseline/wandb/run-1/logs/debug.log",
    "runs/20260101_baseline/tensorboard/events.out.tfevents.1",
    "tensorboard/events.out.tfevents.1",
    "lr_find/20260101_baseline.png",  # --find-lr
    "data/fixture/cache/abc.npy",  # the picture cache beside the fixture
    "cache/abc.npy",  # --cache-dir cache
    "runs/20260101_baseline/best.pt",
    "predictions/x/submission.csv",
]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
@pytest.mark.parametrize("path", STORES)
def test_default_stores_are_ignored(path: str) -> None:
    # --no-index: the rule decides, whatever is tracked in this clone
    done = subprocess.run(
        ["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT, capture_output=True
    )
    assert done.returncode == 0, f"{path} would be committed by `git add .`"


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_kit_source_is_not_ignored() -> None:
    for path in ("kit/cache.py", "kit/tracking.py", "recipes/baseline.py"):
        done = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT)
        assert done.returncode == 1, path
