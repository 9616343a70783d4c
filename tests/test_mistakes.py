"""The mistakes sheet (issue #16): the most confident wrong validation predictions, drawn at the
end of every run and by ``python -m kit.score RUN_DIR --mistakes``."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from kit.plot import picture_sheet, worst_mistakes
from kit.runfolder import VAL_MISTAKES
from kit.score import main as score_main
from kit.train import fit


def _probs(rows: list[tuple[int, float]]) -> np.ndarray:
    """One row per (predicted class, its probability); the rest spread evenly."""
    out = np.zeros((len(rows), 18))
    for i, (cls, p) in enumerate(rows):
        out[i] = (1 - p) / 17
        out[i, cls] = p
    return out


def test_worst_mistakes_are_the_wrong_rows_by_confidence_highest_first():
    truth = np.array([0, 1, 2, 3, 4, 5, 6])
    probs = _probs([(0, 0.99), (5, 0.6), (2, 0.7), (9, 0.9), (1, 0.6), (11, 0.3), (6, 0.2)])
    # row 0 is right however sure; rows 1 and 4 tie at 0.6 and keep their order
    assert worst_mistakes(truth, probs).tolist() == [3, 1, 4, 5]
    assert worst_mistakes(truth, probs, top=2).tolist() == [3, 1]
    assert worst_mistakes(truth[:3] * 0, _probs([(0, 0.5)] * 3), top=5).tolist() == []


def test_picture_sheet_draws_each_picture_under_its_caption_and_the_missing_ones(tmp_path):
    red = tmp_path / "red.jpg"
    Image.new("RGB", (24, 32), (200, 30, 30)).save(red)
    cells = [
        (red, "true wear/male/<30\npred not_wear/male/<30"),
        (None, "b"),
        (red.with_name("x"), "c"),
    ]
    sheet = np.asarray(Image.open(picture_sheet(cells, tmp_path / "s.png", 2, "t")).convert("RGB"))
    h, w = sheet.shape[:2]
    ys, xs = np.nonzero((sheet[..., 0] > 150) & (sheet[..., 1] < 80))
    assert len(ys) > 20000 and xs.max() < w / 2 and ys.max() < h / 2  # scaled up, top left
    dark = sheet.astype(int).sum(-1) < 300
    assert dark[ys.min() - 30 : ys.min(), : w // 2].any()  # its caption right above it
    assert dark[ys.min() : h // 2, w // 2 :].any() and dark[h // 2 :, : w // 2].any()
    assert not dark[h // 2 :, w // 2 :].any()  # "picture not found" twice, the 4th place empty
    widths = [
        Image.open(picture_sheet([(red, c)], tmp_path / "w.png")).width for c in ("a", "a" * 60)
    ]
    assert widths[1] > widths[0]  # a long caption widens its cell, not cut off
    empty = np.asarray(Image.open(picture_sheet([], tmp_path / "e.png")).convert("L"))
    assert (empty < 100).any()  # "nothing to show"


@pytest.fixture(scope="module")
def trained(tiny_base, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("mistakes"))
    return fit(tiny_base.replace(output_dir=out, epochs=1, max_steps_per_epoch=1))


def test_every_run_ends_with_its_mistakes_sheet(trained):
    with Image.open(trained.run_dir / VAL_MISTAKES) as sheet:
        assert sheet.format == "PNG" and sheet.width > 200 and sheet.height > 200


def test_score_redraws_the_sheet_and_refuses_it_for_a_submission(trained, tmp_path, capsys):
    sheet = trained.run_dir / VAL_MISTAKES
    sheet.unlink()
    assert score_main([str(trained.run_dir), "--mistakes"]) == 0
    assert f"wrote {sheet}" in capsys.readouterr().out and sheet.is_file()
    answers = f"{trained.config.data_dir}/eval/answers.csv"
    sub = str(trained.run_dir / "submission.csv")
    assert score_main([sub, "--answers", answers, "--mistakes"]) == 2
    assert "--mistakes draws a run folder's validation mistakes" in capsys.readouterr().err
    assert score_main([str(trained.run_dir), "--mistakes", "--data-dir", str(tmp_path)]) == 2
    assert "pass --data-dir DIR" in capsys.readouterr().err
