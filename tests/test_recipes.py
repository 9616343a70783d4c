"""Every recipe runs end to end with --smoke: a teammate's new recipe is tested automatically
(in plain pytest; the few that train several K-fold members in ``pytest -m slow``)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests import _proc
from tests._runfolders import KFOLD_PARENT_FILES, RUN_FILES

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").glob("*.py"))


def test_there_is_at_least_the_baseline():
    assert "baseline.py" in [p.name for p in RECIPES]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The recipes' working folder: the smoke fixture is built there once and reused."""
    return tmp_path_factory.mktemp("recipes")


#: Recipes that train several K-fold members and ensemble them: `pytest -m slow` (CI runs both
#: sets). Their parts stay in plain pytest: K-fold runs (test_kfold.py), ensembling run folders
#: (test_ensemble.py) and the baseline each member starts from.
SEVERAL_MEMBERS = {"kfold_ensemble"}


def test_the_recipes_left_to_the_slow_set_exist():
    assert {p.stem for p in RECIPES} >= SEVERAL_MEMBERS


@pytest.mark.parametrize(
    "recipe",
    [
        pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if p.stem in SEVERAL_MEMBERS else [])
        for p in RECIPES
    ],
)
def test_recipe_smoke_run_completes_with_a_full_run_folder(recipe: Path, workdir: Path):
    out = workdir / f"runs-{recipe.stem}"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # steadier timing on a busy shared machine
    proc = _proc.run(
        [sys.executable, str(recipe), "--smoke", "--output-dir", str(out)],
        cwd=workdir,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, (
        f"{recipe.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    runs = sorted(p for p in out.iterdir() if (p / "status.json").is_file())
    assert runs, f"{recipe.name}: no run folder under --output-dir ({list(out.iterdir())})"
    for run_dir in runs:
        _check_run_folder(run_dir, recipe.name)
    assert json.loads((runs[0] / "config.json").read_text())["smoke"] is True


def _check_run_folder(run_dir: Path, recipe: str) -> None:
    """A complete run folder, or a complete K-fold parent whose fold runs are complete."""
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    folds = [run_dir / f["run_dir"] for f in summary.get("folds", [])]
    expected = KFOLD_PARENT_FILES if folds else RUN_FILES
    missing = [name for name in expected if not (run_dir / name).is_file()]
    assert not missing, f"{recipe}: {run_dir.name} lacks {missing}"
    assert json.loads((run_dir / "status.json").read_text())["status"] == "complete"
    assert summary["status"] == "complete" and 0.0 <= summary["val_macro_f1"] <= 1.0
    for fold_dir in folds:
        _check_run_folder(fold_dir, recipe)
