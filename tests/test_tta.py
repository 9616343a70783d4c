"""The crop views of kit.tta (``center_face``: the centre and the face crop of each picture
that has a face box), in the forward pass of validation and of inference alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import kit.runfolder as rundir
from kit.crops import CROP_MODES
from kit.inference import predict
from kit.labels import NUM_CLASSES
from kit.train import fit
from kit.train.data import load_splits
from kit.train.loop import predict_frame
from kit.tta import TTA, CropViews, tta_views


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
    cfg = tiny_cfg.replace(face_detector="boxes", face_boxes=str(file),
                           cache_dir=str(tmp_path / "cache"))  # fmt: skip
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
