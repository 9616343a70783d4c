"""kit.score: scores against sklearn, the confusion PNG, bad submissions (kit.plot: test_plot)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, f1_score
from sklearn.metrics import confusion_matrix as sk_confusion

from kit.score import score_submission

ROOT = Path(__file__).resolve().parents[1]
IDS = [f"{i:040x}.jpg" for i in range(300)]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 18, len(IDS))
    pred = np.where(rng.random(len(IDS)) < 0.6, truth, rng.integers(0, 18, len(IDS)))
    answers = tmp_path / "eval" / "answers.csv"
    answers.parent.mkdir()
    pd.DataFrame({"ImageID": IDS, "ans": truth}).to_csv(answers, index=False)
    sub = tmp_path / "sub.csv"
    frame = pd.DataFrame({"ImageID": IDS, "ans": pred})
    frame.sample(frac=1, random_state=1).to_csv(sub, index=False)  # rows out of order
    return sub, answers, truth, pred


def test_scores_match_sklearn(files):
    sub, answers, truth, pred = files
    s = score_submission(sub, answers)
    expected = f1_score(truth, pred, labels=range(18), average="macro", zero_division=0)
    assert s["macro_f1"] == pytest.approx(expected)
    assert s["accuracy"] == pytest.approx(accuracy_score(truth, pred))
    assert np.array_equal(s["confusion"], sk_confusion(truth, pred, labels=range(18)))
    assert s["f1_mask"] == pytest.approx(f1_score(truth // 6, pred // 6, average="macro"))
    assert s["n"] == len(IDS) and s["same_order"] is False


def test_cli_prints_scores_and_writes_png(files):
    sub, answers, truth, pred = files
    out = subprocess.run(
        [sys.executable, "-m", "kit.score", str(sub), "--answers", str(answers)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    f1 = f1_score(truth, pred, labels=range(18), average="macro", zero_division=0)
    assert f"macro F1  {f1:.4f}" in out.stdout
    assert "not_wear/female/>=60" in out.stdout and "true\\pred" in out.stdout
    assert "WARNING: rows are not in the answers' order" in out.stdout
    png = sub.with_name("sub_confusion.png")
    with Image.open(png) as img:
        img.verify()
    with Image.open(png) as img:
        assert img.format == "PNG"
        assert min(img.size) >= 18 * 40  # room for 18 readable rows and columns


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda df: df.iloc[2:],
            r"2 ImageID\(s\) of the answers missing \('0+\.jpg', '0+1\.jpg'\)",
        ),
        (
            lambda df: pd.concat([df, pd.DataFrame({"ImageID": ["extra.jpg"], "ans": [1]})]),
            r"1 ImageID\(s\) not in the answers \('extra.jpg'\)",
        ),
        (lambda df: df.assign(ans=df.ans.where(df.index != 3, 18)), r"line 5, field ans: .*0..17"),
        (lambda df: df.assign(ans=df.ans.where(df.index != 0)), r"line 2, field ans: found ''"),
        (lambda df: df.rename(columns={"ans": "label"}), r"missing column\(s\) \['ans'\]"),
        (
            lambda df: df.assign(ImageID=IDS[:1] * len(df)),
            r"line 3, field ImageID: .*more than once",
        ),
    ],
)
def test_bad_submissions_are_named(files, edit, message):
    sub, answers, _, _ = files
    df = pd.read_csv(answers, dtype={"ImageID": str})
    edit(df).to_csv(sub, index=False)
    with pytest.raises(ValueError, match=message) as err:
        score_submission(sub, answers)
    assert "sub.csv" in str(err.value)


def test_cli_refuses_a_bad_submission(files):
    sub, answers, _, _ = files
    sub.write_text("ImageID,ans\nnope.jpg,3\n")
    out = subprocess.run(
        [sys.executable, "-m", "kit.score", str(sub), "--answers", str(answers)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 2 and "sub.csv" in out.stderr and "300 ImageID(s)" in out.stderr
    assert not sub.with_name("sub_confusion.png").exists()
