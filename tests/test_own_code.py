"""A teammate's own code, written in one recipe file without editing kit, is a first-class
experiment: it trains, the ledger names what it changed, and every tool after training
(``kit.predict``, ``kit.ensemble``, ``kit.score``, ``--resume``, ``kit.tune``) uses it from the
run folder alone, in a fresh process that never imported the recipe.

The recipes are ``recipes/poly_loss.py`` (a Poly-1 loss) and ``recipes/torchvision_resnet18.py``
(torchvision's resnet18, from weights in a torch hub cache the test fills, with a dropout +
linear head)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kit.runs.__main__ import main as runs_main
from tests import _proc
from tests._triggers import assert_documented
from tests.test_model_sources import fill_torch_cache

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"

pytestmark = pytest.mark.slow  # three smoke trainings, then one fresh Python per tool


class World:
    def __init__(self, root: Path) -> None:
        self.root, self.runs = root, root / "runs"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "OMP_NUM_THREADS": "1",
            "TORCH_HOME": str(root / "torch"),
        }
        self.env.pop("KIT_DEBUG", None)

    def python(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        """``python *args`` in a fresh process, from a folder without the recipes."""
        proc = _proc.run(
            [sys.executable, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=400,
        )
        if ok:
            assert proc.returncode == 0, f"{args}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        return proc

    def train(self, recipe: str, *flags: str) -> Path:
        """The run folder of ``recipes/<recipe>.py --smoke`` (its config's name is ``recipe``)."""
        out = self.runs
        self.python(str(RECIPES / f"{recipe}.py"), "--smoke", "--output-dir", str(out), *flags)
        (run,) = [p for p in out.iterdir() if p.name.endswith(f"_{recipe}")]
        return run


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    w = World(tmp_path_factory.mktemp("own-code"))
    fill_torch_cache(w.root / "torch")
    w.baseline = w.train("baseline")
    w.poly = w.train("poly_loss")
    w.resnet = w.train("torchvision_resnet18", "--pretrained")
    return w


def test_the_ledger_names_the_changed_piece_not_the_seed(world, capsys):
    assert runs_main([str(world.runs), "--vs", str(world.baseline), "--width", "0"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line}
    poly = rows[world.poly.name]
    resnet = rows[world.resnet.name]
    assert "loss: cross_entropy -> poly1" in poly and "seed" not in poly
    assert "model: resnet10t -> torchvision/resnet18" in resnet
    assert "head: single -> dropout_linear" in resnet and "pretrained: False -> True" in resnet


def test_the_run_records_its_pieces_and_the_weights_it_started_from(world):
    env = json.loads((world.resnet / "env.json").read_text())
    assert [(p["kind"], p["name"]) for p in env["code"]] == [("head", "dropout_linear")]
    assert env["code"][0]["file"] == str(RECIPES / "torchvision_resnet18.py")
    assert env["weights"]["source"] == "cache"
    assert env["weights"]["name"] == "torchvision/resnet18.IMAGENET1K_V1"
    assert env["normalization"]["source"] == "torchvision/resnet18.IMAGENET1K_V1"
    assert (world.resnet / "recipe.py").is_file() and (
        world.resnet / "code" / "baseline.py"
    ).is_file()
    poly = json.loads((world.poly / "env.json").read_text())["code"]
    assert [(p["kind"], p["name"]) for p in poly] == [("loss", "poly1")]


@pytest.mark.parametrize("which", ["poly", "resnet"])
def test_predict_in_a_fresh_process_gives_the_runs_own_probabilities(world, which):
    run = getattr(world, which)
    out = world.root / f"{which}_submission.csv"
    world.python("-m", "kit.predict", str(run), "-o", str(out))
    got = pd.read_csv(out.with_name(f"{out.stem}_probs.csv"))
    own = pd.read_csv(run / "test_probs.csv")
    assert list(got["image_id"]) == list(own["image_id"])
    np.testing.assert_allclose(
        got.filter(like="p").to_numpy(), own.filter(like="p").to_numpy(), atol=1e-5
    )


def test_ensemble_and_score_in_a_fresh_process(world):
    out = world.root / "ensemble.csv"
    world.python("-m", "kit.ensemble", str(world.poly), str(world.resnet), "-o", str(out))
    assert len(pd.read_csv(out)) == len(pd.read_csv(world.poly / "submission.csv"))
    proc = world.python("-m", "kit.score", str(world.resnet))
    assert "macro" in (proc.stdout + proc.stderr).lower()


def test_resume_in_a_fresh_process_without_the_recipe(world):
    """A run stopped after its last epoch, before its end, finished by the baseline recipe: the
    head comes from the run folder's recipe.py."""
    run = world.root / "stopped" / world.resnet.name
    shutil.copytree(world.resnet, run)
    for name in ("summary.json", "submission.csv", "test_probs.csv", "val_probs.csv"):
        (run / name).unlink()
    status = json.loads((run / "status.json").read_text())
    (run / "status.json").write_text(json.dumps({**status, "status": "interrupted"}))
    world.python(str(RECIPES / "baseline.py"), "--resume", str(run))
    assert json.loads((run / "summary.json").read_text())["status"] == "complete"
    assert (run / "submission.csv").is_file()


def test_a_run_whose_code_is_gone_gets_one_error_naming_the_piece(world):
    run = world.root / "gone" / world.resnet.name
    shutil.copytree(world.resnet, run)
    (run / "recipe.py").unlink()
    shutil.rmtree(run / "code")
    proc = world.python("-m", "kit.predict", str(run), "-o", str(run / "x.csv"), ok=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(errors) == 1, proc.stderr
    assert_documented("run-code-missing", errors[0])
    assert "'dropout_linear'" in errors[0]
    assert f"was defined in __main__ ({RECIPES / 'torchvision_resnet18.py'})" in errors[0]


def test_a_tune_trial_predicts_in_a_fresh_process(world):
    out = world.root / "tune"
    world.python(
        "-m",
        "kit.tune",
        str(RECIPES / "poly_loss.py"),
        "--trials",
        "1",
        "--smoke",
        "--param",
        "lr=log:1e-3:1e-2",
        "--no-prune",
        "--output-dir",
        str(out),
    )
    (trial,) = [p for p in out.iterdir() if (p / "best.pt").is_file()]
    assert (trial / "code" / "kit_recipe_poly_loss.py").is_file()
    world.python("-m", "kit.predict", str(trial), "-o", str(world.root / "trial.csv"))


_VIEW_RECIPE = '''"""A TTA view and a preset of this file's own."""

import albumentations as A

import kit

kit.TTA.register("mirror_twice", lambda x: [x, x.flip(3), x.flip(3).flip(3)])
kit.PRESETS.register("light_blur", lambda cfg: [A.Blur(blur_limit=3, p=0.5)])


def config() -> kit.Config:
    return kit.Config(name="own_views", tta="mirror_twice", preset="light_blur")


if __name__ == "__main__":
    kit.main(config())
'''


def test_a_recipes_own_tta_view_and_preset_predict_in_a_fresh_process(world):
    recipe = world.root / "elsewhere" / "own_views.py"
    recipe.parent.mkdir()
    recipe.write_text(_VIEW_RECIPE)
    out = world.root / "views"
    world.python(str(recipe), "--smoke", "--output-dir", str(out))
    (run,) = [p for p in out.iterdir() if p.is_dir()]
    pieces = json.loads((run / "env.json").read_text())["code"]
    assert {(p["kind"], p["name"]) for p in pieces} == {
        ("preset", "light_blur"),
        ("tta", "mirror_twice"),
    }
    world.python("-m", "kit.predict", str(run), "-o", str(world.root / "views.csv"))
    proc = world.python("-m", "kit.predict", str(run), "--tta", "mirror_twice+hflip", "-o", "x.csv")
    assert "wrote" in proc.stdout
