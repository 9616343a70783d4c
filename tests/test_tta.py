"""The crop views of kit.tta (``center_face``: the centre and the face crop of each picture
that has a face box), in the forward pass of validation and of inference alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import kit
import kit.runfolder as rundir
from kit.config import Config
from kit.data.dataset import CropChoice, _coin
from kit.data.pictures import PreparedLoader
from kit.inference import predict
from kit.labels import NUM_CLASSES
from kit.splits import load_splits
from kit.train import fit
from kit.train.forward import predict_frame
from kit.train.setup import RunPictures
from kit.transforms import CROP_MODES
from kit.tta import TTA, CropViews, tta_views
from tests._triggers import assert_documented


@pytest.fixture
def face_cfg(tiny_cfg, tmp_path: Path):
    """tiny_cfg with the fixture's true face boxes, every third picture's box blanked (no face
    found there), its boxes stored under this test's tmp folder."""
    data = Path(tiny_cfg.data_dir)
    boxes = pd.concat(pd.read_csv(data / part / "faces.csv") for part in ("train", "eval"))
    boxes = boxes.reset_index(drop=True)
    boxes.loc[boxes.index % 3 == 0, ["x0", "y0", "x1", "y1"]] = np.nan
    file = tmp_path / "faces.csv"
    boxes.to_csv(file, index=False)
    with_face = {str(data / i) for i in boxes.loc[boxes["x0"].notna(), "image_id"]}
    cfg = tiny_cfg.replace(
        face_detector="boxes", face_boxes=str(file), cache_dir=str(tmp_path / "cache")
    )
    return cfg, with_face


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 24, NUM_CLASSES))


def test_center_face_averages_the_two_crops_where_a_face_was_found(face_cfg):
    cfg, with_face = face_cfg
    df, model = load_splits(cfg).val, _model()
    found = df["path"].astype(str).isin(with_face).to_numpy()
    assert 0 < found.sum() < len(df)
    for own in ("center", "face"):  # either crop may be the run's own
        run_cfg = cfg.replace(crop_mode=own)
        centre = predict_frame(model, df, cfg.replace(crop_mode="center"), tta="hflip")
        face = predict_frame(model, df, cfg.replace(crop_mode="face"), tta="hflip")
        both = predict_frame(model, df, run_cfg, tta="hflip+center_face")
        np.testing.assert_allclose(both[found], (centre[found] + face[found]) / 2, atol=1e-6)
        own_probs = centre if own == "center" else face  # no face box: the run's own view only
        np.testing.assert_allclose(both[~found], own_probs[~found], atol=1e-6)
    assert not np.allclose(centre[found], face[found], atol=1e-3)  # the crops really differ


def test_crop_views_come_first_and_keep_the_other_views():
    views = tta_views("hflip+center_face")
    assert views.crops == ("center", "face") and views.names == ("hflip",)
    assert views.other_crops("center") == ("face",) and views.other_crops("face") == ("center",)
    x, other = torch.zeros(2, 3, 4, 3), torch.ones(2, 3, 4, 3)
    out = views(x, [other])
    assert len(out) == 4 and torch.equal(out[2], other) and torch.equal(out[3], other.flip(3))
    assert isinstance(TTA.get("center_face"), CropViews)
    assert set(TTA.get("center_face").modes) <= set(CROP_MODES)
    with pytest.raises(ValueError, match="unknown crop mode 'faces'"):
        CropViews(("center", "faces"))


def test_validation_and_the_submission_use_the_crop_views(face_cfg):
    cfg, _ = face_cfg
    run = fit(cfg.replace(tta="center_face", epochs=1))
    splits = load_splits(cfg)
    val = pd.read_csv(run.run_dir / rundir.VAL_PROBS)[rundir.PROB_COLUMNS].to_numpy()
    np.testing.assert_allclose(val, predict(run.run_dir, splits.val, tta="center_face"), 1e-6)
    assert not np.allclose(val, predict(run.run_dir, splits.val), atol=1e-4)
    test = pd.read_csv(run.run_dir / rundir.TEST_PROBS)[rundir.PROB_COLUMNS].to_numpy()
    np.testing.assert_allclose(test, predict(run.run_dir, splits.eval, tta="center_face"), 1e-6)


# ---- --crop-mix: training on both crops, the runs center_face is for ----------------------
def _choice(p: float, applies: set[str]) -> CropChoice:
    own = lambda path: np.zeros((2, 2, 3), np.uint8)  # noqa: E731
    other = lambda path: np.ones((2, 2, 3), np.uint8)  # noqa: E731
    return CropChoice(own, other, p, applies)


def test_crop_choice_shows_the_other_crop_for_its_share_of_the_pictures():
    paths = [f"p{i}.jpg" for i in range(4000)]
    applies, seeds = set(paths[:3000]), list(range(4000))
    picked = _choice(0.3, applies).read_many(paths, seeds)[:, 0, 0, 0] == 1
    assert not picked[3000:].any()  # no face box: always the run's own crop
    assert abs(picked[:3000].mean() - 0.3) < 0.03
    again = _choice(0.3, applies).read_many(paths[::-1], seeds[::-1])[::-1, 0, 0, 0] == 1
    np.testing.assert_array_equal(picked, again)  # the seed decides, not the order
    # independent of the cache's flip coin, which draws from the same per-picture seed
    flips = np.array([_coin(s) for s in seeds[:3000]])
    assert abs(picked[:3000][flips].mean() - picked[:3000][~flips].mean()) < 0.05
    assert not (_choice(0.0, applies).read_many(paths, seeds) == 1).any()
    every = _choice(1.0, applies).read_many(paths, seeds)[:, 0, 0, 0] == 1
    np.testing.assert_array_equal(every, [p in applies for p in paths])


@pytest.mark.parametrize("own", ["center", "face"])
def test_crop_mix_trains_on_both_crops_with_or_without_the_cache(face_cfg, own):
    cfg, with_face = face_cfg
    cfg = cfg.replace(crop_mode=own, crop_mix=0.5)
    splits = load_splits(cfg)
    paths = splits.train["path"].astype(str).tolist()
    seeds = list(range(len(paths)))
    boxes = RunPictures.for_run(cfg.replace(crop_mode="face", crop_mix=0.0), splits).faces
    crops = {m: PreparedLoader(cfg.replace(crop_mode=m), boxes) for m in ("center", "face")}
    read = {}
    for cache in (True, False):
        pictures = RunPictures.for_run(cfg.replace(cache=cache), splits, progress=False)
        assert pictures.prepared and isinstance(pictures.train, CropChoice)
        read[cache] = pictures.train.read_many(paths, seeds)
        if cache:  # both crops are cached, each under its own key
            assert pictures.other_cache is not None
            assert pictures.other_cache.key != pictures.cache.key
        np.testing.assert_array_equal(pictures.eval(paths[0]), crops[own](paths[0]))
    np.testing.assert_array_equal(read[True], read[False])  # the same pixels either way
    other = "face" if own == "center" else "center"
    shown = []
    for k, path in enumerate(paths):
        is_own = np.array_equal(read[True][k], crops[own](path))
        is_other = np.array_equal(read[True][k], crops[other](path))
        assert is_own or is_other
        shown.append(is_other and not is_own)
        if path not in with_face:
            assert is_own
    found = np.array([p in with_face for p in paths])
    assert 0.3 < np.mean(np.array(shown)[found]) < 0.7


def test_a_crop_mix_run_is_deterministic_and_differs_from_one_crop(face_cfg):
    cfg, _ = face_cfg
    runs = [fit(cfg.replace(crop_mix=mix, name=f"m{k}")) for k, mix in enumerate([0.5, 0.5, 0.0])]
    loss = [[row["train_loss"] for row in rundir.read_metrics(r.run_dir)] for r in runs]
    assert loss[0] == loss[1]
    assert loss[0] != loss[2]
    assert kit.read_run(runs[0].run_dir).config.crop_mix == 0.5
    faces = rundir.read_env(runs[0].run_dir)["faces"]  # the other crop's boxes are recorded
    assert faces is not None and faces["found"] > 0


def test_crop_mix_checks_its_share_and_the_run_crop():
    with pytest.raises(
        ValueError, match=r"'crop_mix' is 1\.5; expected a share in \[0, 1\]"
    ) as err:
        Config(crop_mix=1.5).validate()
    assert_documented("crop-mix-range", str(err.value))
    with pytest.raises(ValueError, match="crop_mode 'tight'.*--crop-mode center or face") as err:
        Config(crop_mix=0.5, crop_mode="tight").validate()
    assert_documented("crop-mix-mode", str(err.value))
    Config(crop_mix=0.5, crop_mode="face").validate()
