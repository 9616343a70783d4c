"""predict (run folders, models, batches, TTA) and write_submission."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from kit.data import read_eval, read_train
from kit.inference import load_run_model, predict
from kit.runfolder import write_submission
from kit.train import fit
from tests._triggers import assert_documented

PROBS = [f"p{k}" for k in range(18)]


@pytest.fixture(scope="module")
def trained(tiny_base, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("inference"))
    return fit(tiny_base.replace(output_dir=out, epochs=1, max_steps_per_epoch=2))


def test_predict_from_a_run_folder_reproduces_its_val_probs(trained):
    val = pd.read_csv(trained.run_dir / "val_probs.csv", dtype={"image_id": str})
    frame = read_train(trained.config.data_dir).set_index("image_id").loc[val["image_id"]]
    probs = predict(trained.run_dir, frame.reset_index(), batch_size=7)
    assert probs.shape == (len(val), 18)
    np.testing.assert_allclose(probs, val[PROBS].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)


def test_predict_model_equals_run_folder_and_ignores_a_foreign_image_size(trained):
    df = read_eval(trained.config.data_dir)
    model, cfg = load_run_model(trained.run_dir)
    from_model = predict(model, df, cfg)
    from_dir = predict(trained.run_dir, df, cfg=cfg.replace(image_size=(64, 64)))
    np.testing.assert_allclose(from_model, from_dir, atol=1e-6)
    test_probs = pd.read_csv(trained.run_dir / "test_probs.csv")[PROBS].to_numpy()
    np.testing.assert_allclose(from_model, test_probs, atol=1e-6)


def test_predict_restores_training_mode_and_needs_cfg_for_a_model(trained):
    df = read_eval(trained.config.data_dir).head(3)
    model, cfg = load_run_model(trained.run_dir)
    model.train()
    predict(model, df, cfg)
    assert model.training
    with pytest.raises(ValueError, match="cfg"):
        predict(model, df)
    with pytest.raises(ValueError, match="tta"):
        predict(model, df, cfg, tta="rotate")


def test_predict_from_a_folder_without_best_pt_is_refused_naming_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="best.pt not found") as err:
        predict(tmp_path, pd.DataFrame({"path": []}))
    assert str(tmp_path / "best.pt") in str(err.value)
    assert_documented("checkpoint-missing", str(err.value))


def test_hflip_tta_averages_the_picture_and_its_mirror(trained, tmp_path):
    df = read_eval(trained.config.data_dir).head(6).reset_index(drop=True)
    mirrored = df.copy()
    for i, path in enumerate(df["path"]):
        out = tmp_path / f"{i}.png"  # lossless, so the mirror is exact
        Image.open(path).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(out)
        lossless = tmp_path / f"{i}_orig.png"
        Image.open(path).convert("RGB").save(lossless)
        mirrored.loc[i, "path"] = str(out)
        df.loc[i, "path"] = str(lossless)
    model, cfg = load_run_model(trained.run_dir)
    plain, flipped = predict(model, df, cfg), predict(model, mirrored, cfg)
    tta = predict(model, df, cfg, tta="hflip")
    np.testing.assert_allclose(tta, (plain + flipped) / 2, atol=1e-5)
    assert not np.allclose(plain, flipped, atol=1e-4)  # the mirror is a different input


def _eval_frame(n: int) -> pd.DataFrame:
    ids = [f"{k:040x}.jpg" for k in range(n)][::-1]  # not sorted: order must be kept as given
    return pd.DataFrame({"image_id": ids, "ImageID": ids, "path": ids})


def test_write_submission_keeps_order_and_argmaxes(tmp_path):
    eval_df = _eval_frame(5)
    probs = np.full((5, 18), 0.01)
    probs[np.arange(5), [3, 17, 0, 9, 4]] = 0.9
    path = write_submission(probs, eval_df, tmp_path / "sub.csv")
    sub = pd.read_csv(path)
    assert list(sub.columns) == ["ImageID", "ans"]
    assert sub["ImageID"].tolist() == eval_df["ImageID"].tolist()
    assert sub["ans"].tolist() == [3, 17, 0, 9, 4]
    assert sub["ans"].dtype.kind == "i"
    assert [p.name for p in tmp_path.iterdir()] == ["sub.csv"]  # no temporary left behind


def test_write_submission_accepts_labels(tmp_path):
    sub = pd.read_csv(write_submission([1, 2.0, 17], _eval_frame(3), tmp_path / "s.csv"))
    assert sub["ans"].tolist() == [1, 2, 17]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.zeros((4, 18)), "4 predictions for 5"),
        ([1, 2, 3, 4, np.nan], "nan"),
        ([1, 2, 3, 4, 18], "18"),
        ([18, 1, 2, 3, 4], "label 18 at row 0"),
        ([1, 2, 3, 4, -1], "-1"),
        ([1, 2, 3, 4, 2.5], "2.5"),
        (np.zeros((5, 3)), r"\(n, 18\)"),
        (np.where(np.eye(5, 18) > 0, np.nan, 0.0), "NaN"),
    ],
)
def test_write_submission_rejects_bad_predictions(tmp_path, values, message):
    with pytest.raises(ValueError, match=message) as err:
        write_submission(values, _eval_frame(5), tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()
    if message == "label 18 at row 0":  # the page's example
        assert_documented("submission-label", str(err.value))
    if message == "NaN":
        assert_documented("submission-nan", str(err.value))


def test_write_submission_refuses_fewer_predictions_than_eval_rows(tmp_path):
    with pytest.raises(ValueError, match="3 predictions for 6 eval rows") as err:
        write_submission(np.zeros(3, int), _eval_frame(6), tmp_path / "s.csv")
    assert not (tmp_path / "s.csv").exists()
    assert_documented("submission-rows", str(err.value))
