"""A run's record of its code is true: an uncommitted recipe is dirty, and the run folder holds
what re-creates the code (recipe.py, git.diff) (issue #16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kit.config import Config
from kit.models import HEADS
from kit.runfolder import (
    GIT_DIFF,
    RECIPE,
    ensure_run_code,
    env_info,
    git_state,
    recipe_path,
    write_source,
)
from tests import _proc
from tests._triggers import assert_documented

ROOT = Path(__file__).resolve().parents[1]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path) -> Path:
    repo = tmp_path / "team"
    (repo / "recipes").mkdir(parents=True)
    (repo / "kit").mkdir()
    (repo / "recipes" / "baseline.py").write_text("print('baseline')\n")
    (repo / "kit" / "losses.py").write_text("X = 1\n")
    (repo / ".gitignore").write_text("/runs/\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "start")
    return repo


def test_an_uncommitted_recipe_is_dirty_and_stored_with_the_run(repo, monkeypatch):
    monkeypatch.chdir(repo)
    assert git_state().dirty is False and env_info("cpu")["git_dirty"] is False
    mine = repo / "recipes" / "mine.py"
    mine.write_text("import kit\nprint('mine')\n")
    (repo / "notes.txt").write_text("untracked outside recipes/ and kit/ is no code change\n")
    state = git_state()
    assert state.dirty is True and state.untracked == ("recipes/mine.py",)
    env = env_info("cpu")
    assert env["git_dirty"] is True and env["git_untracked"] == ["recipes/mine.py"]
    assert env["git_commit"] == _git(repo, "rev-parse", "HEAD").strip()

    (repo / "kit" / "losses.py").write_text("X = 2\n")  # a tracked change too
    run = repo / "runs" / "r"
    run.mkdir(parents=True)
    written = write_source(run, mine)
    assert written == [run / RECIPE, run / GIT_DIFF]
    assert (run / RECIPE).read_text() == mine.read_text()
    # the folder re-creates the code: a clean checkout of the commit plus git.diff
    clone = repo.parent / "clone"
    _git(repo.parent, "clone", "-q", str(repo), str(clone))
    _git(clone, "apply", str(run / GIT_DIFF))
    assert (clone / "recipes" / "mine.py").read_text() == mine.read_text()
    assert (clone / "kit" / "losses.py").read_text() == "X = 2\n"


def test_a_clean_tree_stores_the_recipe_only(repo, monkeypatch):
    monkeypatch.chdir(repo)
    run = repo / "runs" / "r"
    run.mkdir(parents=True)
    assert write_source(run, repo / "recipes" / "baseline.py") == [run / RECIPE]


def test_recipe_path_is_a_py_file_outside_kit(repo):
    assert recipe_path(str(repo / "recipes" / "baseline.py")) == repo / "recipes" / "baseline.py"
    assert recipe_path(str(ROOT / "kit" / "runs" / "__main__.py")) is None  # python -m kit.runs
    assert recipe_path("-c") is None and recipe_path("") is None
    assert recipe_path(str(repo / "recipes" / "nope.py")) is None


def test_documented_outputs_are_git_ignored():
    names = [
        "ensemble.csv",
        "ensemble.json",
        "submission_confusion.png",
        "ledger.md",
        "my.yaml",
        "subs/soft.csv",
        "runs/x/val_confusion.png",
    ]
    ignored = subprocess.run(
        ["git", "check-ignore", *names], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    assert ignored == names


_RECIPE = """
import sys
import kit

cfg = kit.Config(name="mine", data_dir=sys.argv[1], model="test_resnet", image_size=(32, 24),
                 epochs=1, batch_size=16, max_steps_per_epoch=1, workers=0, device="cpu",
                 quiet=True, keep_last=False)
print(kit.fit(cfg).run_dir)
"""


def test_a_run_of_an_untracked_recipe_is_recorded_dirty_with_its_copy(repo, tiny_data):
    """The newcomer's flow: write recipes/mine.py, run it, commit later."""
    mine = repo / "recipes" / "mine.py"
    mine.write_text(_RECIPE)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "recipes/mine.py", str(tiny_data)]
    done = _proc.run(argv, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    run = repo / out.strip().splitlines()[-1]
    record = json.loads((run / "env.json").read_text())
    assert record["git_dirty"] is True and record["git_untracked"] == ["recipes/mine.py"]
    assert (run / RECIPE).read_text() == _RECIPE
    assert "recipes/mine.py" in (run / GIT_DIFF).read_text()
    # keep_last=False: the complete run kept best.pt and dropped last.pt
    assert (run / "best.pt").is_file() and not (run / "last.pt").exists()


def test_the_modules_copied_are_those_whose_file_lies_in_the_folders_links_followed(
    tmp_path, monkeypatch
):
    from kit.runfolder.code import _local_modules

    mine, other = tmp_path / "mine", tmp_path / "other"
    mine.mkdir()
    other.mkdir()
    (mine / "helper.py").write_text("X = 1\n")
    (other / "linked.py").symlink_to(mine / "helper.py")  # lives in mine
    (other / "own.py").write_text("X = 2\n")
    (tmp_path / "via").symlink_to(mine)  # mine reached through a linked folder
    modules = {
        "t_via": tmp_path / "via" / "helper.py",
        "t_linked": other / "linked.py",
        "t_own": other / "own.py",
        "t_compiled": mine / "helper.pyc",
        "kit.t_kit": mine / "helper.py",
    }
    for name, file in modules.items():
        monkeypatch.setitem(sys.modules, name, type(sys)(name))
        sys.modules[name].__file__ = str(file)
    found = _local_modules({mine.resolve()})
    assert {n: f for n, f in found.items() if n in modules} == {
        "t_via": (mine / "helper.py").resolve(),
        "t_linked": (mine / "helper.py").resolve(),
    }


def test_a_run_whose_recipe_no_longer_imports_is_refused_naming_the_file(tmp_path):
    """The config names a piece no registry has, so the run's recipe.py is imported: one
    ValueError naming that file and what its import raised."""
    run = tmp_path / "run"
    run.mkdir()
    (run / RECIPE).write_text("import no_such_module_of_mine\n")
    assert "gone_head" not in HEADS  # (importing kit.models loads the heads' registry)
    with pytest.raises(ValueError, match=r"importing the run's code .*recipe\.py failed") as e:
        ensure_run_code(run, Config(head="gone_head"))
    assert "ModuleNotFoundError" in str(e.value) and "no_such_module_of_mine" in str(e.value)
    assert_documented("run-code-broken", str(e.value))
