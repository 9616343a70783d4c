"""``python -m kit.predict``: a run's (or K-fold parent's) own test predictions reproduced from
the shell, for an eval folder, a folder of pictures or a CSV of paths (issue #16)."""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kit.labels import class_name
from kit.predict import classes_path, main, probs_path, read_inputs
from kit.runfolder import PROB_COLUMNS
from kit.train import fit
from tests._triggers import assert_documented


@pytest.fixture(scope="module")
def trained(tiny_base, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("predict"))
    return fit(tiny_base.replace(output_dir=out, epochs=1, max_steps_per_epoch=2))


def _probs(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"image_id": str}).set_index("image_id")[PROB_COLUMNS]


def _run(argv: list[str], capsys) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def test_predict_reproduces_the_runs_own_test_probs_and_submission(trained, tmp_path, capsys):
    out = tmp_path / "sub.csv"
    printed = _run([str(trained.run_dir), "-o", str(out), "--device", "cpu"], capsys)
    assert f"wrote {out}" in printed
    expected = pd.read_csv(trained.run_dir / "test_probs.csv", dtype={"image_id": str})
    got = pd.read_csv(probs_path(out), dtype={"image_id": str})
    assert got["image_id"].tolist() == expected["image_id"].tolist()  # info.csv order
    np.testing.assert_allclose(got[PROB_COLUMNS], expected[PROB_COLUMNS], atol=1e-6)
    assert out.read_bytes() == (trained.run_dir / "submission.csv").read_bytes()


def test_a_folder_of_pictures_and_a_csv_of_paths_give_the_same_probabilities(
    trained, tmp_path, capsys
):
    images = Path(trained.config.data_dir) / "eval" / "images"
    expected = _probs(trained.run_dir / "test_probs.csv")
    folder_out = tmp_path / "folder.csv"
    _run([str(trained.run_dir), "--data-dir", str(images), "-o", str(folder_out)], capsys)
    by_folder = _probs(probs_path(folder_out))
    assert sorted(by_folder.index) == sorted(expected.index)
    np.testing.assert_allclose(by_folder.loc[expected.index], expected, atol=1e-6)

    names = sorted(expected.index)[:5]
    lists = tmp_path / "lists"
    lists.mkdir()
    listing = lists / "pictures.csv"  # paths relative to the CSV's own folder
    pd.DataFrame({"path": [os.path.relpath(images / n, lists) for n in names]}).to_csv(listing)
    csv_out = tmp_path / "csv.csv"
    _run([str(trained.run_dir), "--data-dir", str(listing), "-o", str(csv_out)], capsys)
    by_csv = pd.read_csv(probs_path(csv_out))
    np.testing.assert_allclose(by_csv[PROB_COLUMNS], expected.loc[names], atol=1e-6)


def test_tta_hflip_changes_the_probabilities(trained, tmp_path, capsys):
    out = tmp_path / "tta.csv"
    _run([str(trained.run_dir), "--tta", "hflip", "-o", str(out)], capsys)
    plain = _probs(trained.run_dir / "test_probs.csv")
    flipped = _probs(probs_path(out)).loc[plain.index]
    np.testing.assert_allclose(flipped.sum(axis=1), 1.0, atol=1e-6)
    assert not np.allclose(flipped, plain, atol=1e-4)


def test_a_kfold_parent_averages_its_folds_like_its_own_test_probs(tiny_base, tmp_path, capsys):
    cfg = tiny_base.replace(output_dir=str(tmp_path / "runs"), epochs=1, max_steps_per_epoch=1)
    parent = fit(cfg.replace(folds="all", n_folds=2)).run_dir
    out = tmp_path / "kfold.csv"
    printed = _run([str(parent), "-o", str(out)], capsys)
    assert "2 folds averaged" in printed
    expected = pd.read_csv(parent / "test_probs.csv")
    got = pd.read_csv(probs_path(out))
    np.testing.assert_allclose(got[PROB_COLUMNS], expected[PROB_COLUMNS], atol=1e-6)
    assert out.read_bytes() == (parent / "submission.csv").read_bytes()


def test_bad_inputs_are_one_error_line(trained, tmp_path, capsys):
    no_path = tmp_path / "no_path.csv"
    no_path.write_text("file\na.jpg\n")
    assert main([str(trained.run_dir), "--data-dir", str(no_path)]) == 2
    seen = capsys.readouterr().err
    assert "no 'path' column" in seen
    assert_documented("predict-csv-no-path", seen)
    assert main([str(tmp_path), "--data-dir", str(no_path)]) == 2
    seen = capsys.readouterr().err
    assert "best.pt not found" in seen
    assert_documented("predict-no-best", seen)


def test_a_csv_naming_a_missing_picture_is_refused_naming_its_line(tmp_path):
    paths = tmp_path / "l.csv"
    paths.write_text("path\na.jpg\n")
    with pytest.raises(FileNotFoundError, match=r"l\.csv, line 2, field 'path': ") as err:
        read_inputs(paths)
    assert str(tmp_path / "a.jpg") in str(err.value)
    assert_documented("predict-csv-missing", str(err.value))


def test_a_folder_without_pictures_is_refused_naming_what_was_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="no pictures") as err:
        read_inputs(tmp_path)
    assert_documented("predict-no-pictures", str(err.value))


@pytest.mark.filterwarnings("ignore:'kit.inference' found in sys.modules:RuntimeWarning")
def test_kit_inference_is_not_a_command_and_points_at_kit_predict(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["kit.inference", "--help"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("kit.inference", run_name="__main__")
    assert info.value.code == 2 and "python -m kit.predict RUN_DIR" in capsys.readouterr().err


def test_kit_predict_probs_is_the_function_and_kit_predict_the_command(trained):
    import kit
    import kit.predict
    from kit.data import read_eval
    from kit.inference import predict

    df = read_eval(trained.config.data_dir).head(4)
    np.testing.assert_allclose(kit.predict_probs(trained.run_dir, df), predict(trained.run_dir, df))
    assert kit.predict is sys.modules["kit.predict"] and kit.predict.main is main


def test_class_names_go_beside_an_unchanged_submission(trained, tmp_path, capsys):
    out = tmp_path / "named.csv"
    printed = _run([str(trained.run_dir), "-o", str(out), "--class-probs"], capsys)
    assert str(classes_path(out)) in printed
    # the submission keeps the competition's format exactly
    assert out.read_bytes() == (trained.run_dir / "submission.csv").read_bytes()
    submission = pd.read_csv(out)
    named = pd.read_csv(classes_path(out))
    assert list(named.columns[:4]) == ["ImageID", "ans", "class", "confidence"]
    assert named["ImageID"].tolist() == submission["ImageID"].tolist()
    assert named["ans"].tolist() == submission["ans"].tolist()
    assert named["class"].tolist() == [class_name(a) for a in submission["ans"]]
    probs = _probs(probs_path(out)).to_numpy()
    np.testing.assert_allclose(named["confidence"], probs.max(axis=1), rtol=1e-5)
    per_class = named[[class_name(c) for c in range(18)]].to_numpy()
    np.testing.assert_allclose(per_class, probs, atol=1e-6)
    # without --class-probs: the four columns only
    plain = tmp_path / "plain.csv"
    _run([str(trained.run_dir), "-o", str(plain)], capsys)
    columns = list(pd.read_csv(classes_path(plain)).columns)
    assert columns == ["ImageID", "ans", "class", "confidence"]
