"""The synthetic fixture: layout, real-like proportions, determinism, learnable cues, CLI."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from kit.data import read_eval, read_train, verify_images
from kit.data.fixture import make_fixture
from tests import _proc
from tests._layout_helpers import STEM_MASK, age_group, real_meta

SMALL = (40, 32)  # (height, width)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """300 people at a tiny picture size (the proportions need many people)."""
    return make_fixture(tmp_path_factory.mktemp("big"), 300, SMALL, seed=3, n_eval_people=10)


def test_layout_parses(big: Path) -> None:
    train = verify_images(read_train(big))
    assert len(train) == 7 * 300 and train["folder"].nunique() == 300
    assert all(re.fullmatch(r"\d{6}(-1)?", p) for p in train["person_id"])
    assert any(p.endswith("-1") for p in train["person_id"])
    with Image.open(train["path"][0]) as image:
        assert image.size == SMALL[::-1]  # PIL: (width, height)
    evals = verify_images(read_eval(big))
    info = pd.read_csv(big / "eval" / "info.csv")
    answers = pd.read_csv(big / "eval" / "answers.csv")
    assert len(evals) == 70 and evals["ImageID"].tolist() == info["ImageID"].tolist()
    assert (info["ans"] == 0).all()
    assert answers["ImageID"].tolist() == info["ImageID"].tolist()
    assert answers["ans"].between(0, 17).all()
    assert all(re.fullmatch(r"[0-9a-f]{40}\.jpg", i) for i in info["ImageID"])
    # Seven pictures per eval person: five masks, one incorrect, one without.
    assert np.bincount(answers["ans"] // 6, minlength=3).tolist() == [50, 10, 10]


def test_extensions_and_junk(big: Path) -> None:
    images = big / "train" / "images"
    suffixes = {p.suffix[1:] for p in images.glob("*/*") if not p.name.startswith(".")}
    assert {"jpg", "jpeg", "png", "JPG", "Jpeg"} <= suffixes
    assert len(list(images.glob("*/._mask1.jpg"))) >= 2
    assert (images / ".DS_Store").exists()
    mixed = [d for d in images.iterdir() if len({p.suffix for p in d.glob("[!.]*")}) > 1]
    assert mixed  # one person has several extensions in the same folder


def test_proportions_follow_the_real_data(big: Path) -> None:
    fixture = pd.read_csv(big / "train" / "train.csv", dtype={"id": str})
    real = real_meta().assign(age=lambda d: d["age"].astype(int))
    for table in (fixture, real):
        table["group"] = [age_group(a) for a in table["age"]]
    female = (fixture["gender"] == "female").mean()
    assert abs(female - (real["gender"] == "female").mean()) < 0.03
    got = fixture["group"].value_counts(normalize=True).sort_index()
    want = real["group"].value_counts(normalize=True).sort_index()
    assert np.abs(got.to_numpy() - want.to_numpy()).max() < 0.03
    assert fixture["age"].between(18, 60).all()
    assert (fixture.loc[fixture["group"] == 2, "age"] == 60).all()
    middle = fixture[fixture["group"] == 1]
    near = middle["age"].between(57, 59).mean()
    real_near = real.loc[real["group"] == 1, "age"].between(57, 59).mean()
    assert abs(near - real_near) < 0.12  # ~28% of the 30-59 people are 57-59
    # Every gender x age-group cell is present.
    assert fixture.groupby(["gender", "group"]).size().size == 6


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_deterministic_and_seeded(tmp_path: Path) -> None:
    first = _files(make_fixture(tmp_path / "a", 8, SMALL, seed=5, n_eval_people=2))
    second = _files(make_fixture(tmp_path / "b", 8, SMALL, seed=5, n_eval_people=2))
    assert first == second
    parallel = _files(make_fixture(tmp_path / "p", 8, SMALL, seed=5, n_eval_people=2, workers=2))
    assert parallel == first  # people drawn in two processes: the same bytes
    other = _files(make_fixture(tmp_path / "c", 8, SMALL, seed=6, n_eval_people=2))
    assert other["train/train.csv"] != first["train/train.csv"]
    assert set(other) != set(first)  # other ids and eval names
    with pytest.raises(FileExistsError, match="overwrite"):
        make_fixture(tmp_path / "a", 8, SMALL, seed=5)
    make_fixture(tmp_path / "a", 3, SMALL, seed=5, n_eval_people=0, overwrite=True)
    assert not (tmp_path / "a" / "eval").exists()
    assert len(read_train(tmp_path / "a")) == 21


def _pixels(paths: list[str]) -> np.ndarray:
    """Pictures shrunk to 16x20, as flat rows of 0..1 values."""
    rows = [Image.open(p).convert("RGB").resize((16, 20), Image.BILINEAR) for p in paths]
    return np.stack([np.asarray(r, np.float32).ravel() / 255 for r in rows])


def test_cues_carry_the_labels(tmp_path: Path) -> None:
    # Linear models on raw pixels, scored on people they never saw, are far above chance.
    train = read_train(make_fixture(tmp_path, 60, SMALL, seed=1, n_eval_people=0))
    pixels = _pixels(train["path"])
    unseen = train["folder"].isin(train["folder"].unique()[1::2]).to_numpy()
    mask = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=300))
    mask.fit(pixels[~unseen], train["mask"][~unseen])
    score = f1_score(train["mask"][unseen], mask.predict(pixels[unseen]), average="macro")
    assert score > 0.55, score  # chance: about 0.33
    age = make_pipeline(StandardScaler(), Ridge(alpha=1000))
    age.fit(pixels[~unseen], train["age"][~unseen])
    predicted = pd.Series(age.predict(pixels[unseen]))
    rank_corr = predicted.corr(train["age"][unseen].reset_index(drop=True), method="spearman")
    assert rank_corr > 0.6, rank_corr  # chance: about 0


def test_cli(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = [sys.executable, "-m", "kit.data.fixture", str(out), "--people", "4"]
    args += ["--size", "32", "24", "--seed", "2", "--eval-people", "1"]
    done = _proc.run(args, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert str(out.resolve()) in done.stdout and "4 people, 28 images" in done.stdout
    assert "7 images" in done.stdout
    assert "Warning" not in done.stderr
    assert len(read_train(out)) == 28 and len(read_eval(out)) == 7
    again = _proc.run(args, capture_output=True, text=True, check=False)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert STEM_MASK  # the helper's stems are the ones the fixture writes
    assert set(read_train(out)["stem"]) == set(STEM_MASK)


def test_cli_help_shows_defaults_and_height_width_order(capsys) -> None:
    from kit.data.fixture import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--size H W" in text and "picture height and width" in text
    assert "(default: (128, 96))" in text and "(default: 60)" in text


def test_cli_shows_progress_lines_off_a_terminal(tmp_path: Path, monkeypatch, capsys) -> None:
    import kit.progress as progress
    from kit.data.fixture import main

    monkeypatch.setattr(progress.sys.stderr, "isatty", lambda: False, raising=False)
    monkeypatch.setattr(progress, "EVERY_FRACTION", 0.5)
    monkeypatch.setattr(progress.Progress, "__init__", _no_wait(progress.Progress.__init__))
    main([str(tmp_path / "f"), "--people", "4", "--size", "16", "12", "--eval-people", "2"])
    out = capsys.readouterr().out
    assert "fixture: training people   50% (2/4 people)" in out and " img/s  ETA " in out
    assert "in " in out.splitlines()[-3]  # the time it took


def _no_wait(init):
    def call(self, *args, **kwargs):
        init(self, *args, **{**kwargs, "first_after": 0.0})

    return call
