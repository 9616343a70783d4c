"""``--estimate``: every figure is measured on a sample and scaled to the run; an
out-of-memory step gives the batch-size advice; nothing becomes a run."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch

import kit.estimate as kit_estimate
from kit.estimate import estimate, format_estimate
from kit.recipe import main as recipe_main

STAGES = ("face boxes", "cache build", "one epoch", "validation", "one fold", "all folds", "TTA")


def _quiet(line: str) -> None:
    pass


@pytest.fixture
def face_cfg(tiny_cfg):
    return tiny_cfg.replace(crop_mode="face", cache=True, tta="hflip", folds="all", n_folds=3)


def test_every_stage_is_measured_and_scaled_from_the_sample(face_cfg) -> None:
    small = estimate(face_cfg, sample=12, log=_quiet)
    large = estimate(face_cfg, sample=36, log=_quiet)
    assert (small.sample, large.sample) == (12, 36)
    assert small.pictures == large.pictures > 36
    for est in (small, large):
        names = [s.name for s in est.stages]
        for stage in STAGES:
            row = next(s for s in est.stages if s.name.startswith(stage))
            assert row.seconds is not None and row.seconds > 0, (stage, names)
    # the sample size shows in what was measured, and the figures move with it
    for name in ("cache build", "face boxes (skimage)"):
        assert small.stage(name).measured.startswith("12 pictures")
        assert large.stage(name).measured.startswith("36 pictures")
        assert small.stage(name).seconds != large.stage(name).seconds
    # the cache's disk is its measured bytes per picture times the run's pictures: 32x24 RGB
    per_picture = 32 * 24 * 3
    for est in (small, large):
        assert per_picture * est.pictures <= est.cache_bytes < 1.2 * per_picture * est.pictures
    # folds: 3 folds of one fold each plus the face boxes and the cache, once
    once = small.stage("face boxes (skimage)").seconds + small.stage("cache build").seconds
    assert small.stage("all folds").seconds == pytest.approx(
        3 * small.stage("one fold").seconds + once
    )
    assert not Path(face_cfg.output_dir).exists()  # no run folder, nothing for the ledger


def test_out_of_memory_halves_the_batch_and_names_the_largest_that_fit(
    tiny_cfg, monkeypatch
) -> None:
    real = kit_estimate.time_train_steps
    tried = []

    def step(cfg, *args, **kwargs):
        tried.append(cfg.batch_size)
        if cfg.batch_size > 4:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(cfg, *args, **kwargs)

    monkeypatch.setattr(kit_estimate, "time_train_steps", step)
    est = estimate(tiny_cfg.replace(batch_size=16), sample=24, log=_quiet)
    assert tried == [16, 8, 4]
    assert (est.asked_batch, est.batch_size) == (16, 4)
    text = format_estimate(est)
    assert "out of memory at batch 16: the largest that fit is 4" in text
    assert "--batch-size 4 (with --grad-accum 4 to keep 16 pictures per update)" in text


def test_out_of_memory_at_batch_one_is_one_error(tiny_cfg, monkeypatch) -> None:
    def step(cfg, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(kit_estimate, "time_train_steps", step)
    with pytest.raises(ValueError, match="out of memory at batch size 1"):
        estimate(tiny_cfg.replace(batch_size=2), sample=12, log=_quiet)


def test_a_recipe_with_estimate_prints_every_stage_and_the_disk(tiny_cfg, capsys) -> None:
    recipe_main(tiny_cfg, argv=["--estimate", "16"])
    out = capsys.readouterr().out
    assert "measured on 16 of the run's" in out
    for stage in STAGES:
        assert f"\n  {stage}" in out, stage
    assert "disk: the cache needs" in out and "free at" in out
    assert not Path(tiny_cfg.output_dir).exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--estimate", "0"], "argument --estimate: expected an integer >= 1, got '0'"),
        (["--find-lr", "x"], "argument --find-lr: expected an integer >= 1, got 'x'"),
        (["--find-lr", "2"], "--find-lr needs at least 5 steps"),
    ],
)
def test_bad_measure_flags_are_one_error_line(tiny_cfg, capsys, argv, message) -> None:
    with pytest.raises(SystemExit) as stop:
        recipe_main(tiny_cfg, argv=argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"error: {message}" in err and "Traceback" not in err


RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES, ids=[p.stem for p in RECIPES])
def test_every_recipe_estimates(recipe: Path, tmp_path, monkeypatch, capsys) -> None:
    """--estimate works on every recipe, through the recipe's own code (in-process)."""
    monkeypatch.syspath_prepend(str(recipe.parent))  # recipes import the baseline by name
    monkeypatch.chdir(tmp_path)
    main = runpy.run_path(str(recipe), run_name="recipe_under_test")["main"]
    main(["--estimate", "16", "--smoke", "--output-dir", str(tmp_path / "runs")])
    out = capsys.readouterr().out
    assert "measured on 16 of the run's" in out, out[-2000:]
    assert "  all folds" in out and "disk:" in out
    assert not (tmp_path / "runs").exists()
