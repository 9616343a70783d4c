"""The label-noise finder: planted label errors in a confident out-of-fold table rank on top."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from kit.data import load_fixes
from kit.labels import encode
from kit.runs.__main__ import main as runs_main
from kit.runs.suspects import Suspects, find_suspects, fixes_table
from tests._runfolders import Preds, RunSpec, summary, write_run
from tests._triggers import assert_documented

STEMS = ["mask1", "mask2", "mask3", "mask4", "mask5", "incorrect_mask", "normal"]
STEM_MASK = [0, 0, 0, 0, 0, 1, 2]


def _oof_run(root: Path, seed: int = 0, people: int = 60):
    """A K-fold-like run whose probabilities are confident and right about the TRUE labels,
    and whose label column carries planted errors. Returns the run and what was planted."""
    rng = np.random.default_rng(seed)
    gender = rng.integers(0, 2, people)
    age = rng.choice(3, people, p=[0.5, 0.4, 0.1])
    planted = {"gender": [3, 17, 29, 41], "age": [5, 22, 48], "swap": [8, 33]}
    ids, persons, truth, stated, folds = [], [], [], [], []
    for i in range(people):
        for stem, mask in zip(STEMS, STEM_MASK, strict=True):
            g, a, m = gender[i], age[i], mask
            ids.append(f"{i:06d}_person/{stem}")
            persons.append(f"{i:06d}")
            folds.append(i % 5)
            truth.append(encode(m, g, a))
            g2 = 1 - g if i in planted["gender"] else g
            a2 = (a + 1) % 3 if i in planted["age"] else a
            m2 = {1: 2, 2: 1}.get(m, m) if i in planted["swap"] else m
            stated.append(encode(m2, g2, a2))
    truth = np.array(truth)
    logits = rng.normal(scale=0.7, size=(len(truth), 18)) + 4.0 * np.eye(18)[truth]
    probs = np.exp(logits)
    probs /= probs.sum(1, keepdims=True)
    preds = Preds(ids, np.array(stated), probs, person_ids=persons, folds=folds)
    run = write_run(root, RunSpec(name="oof", summary=summary(0.9), preds=preds))
    return run, planted, gender, age


def test_planted_label_errors_rank_near_the_top(tmp_path):
    run, planted, _, _ = _oof_run(tmp_path)
    table = find_suspects(run, top=10).table
    gender = table[table.task == "gender"]["person_id"].head(2 * len(planted["gender"]))
    age = table[table.task == "age"]["person_id"].head(2 * len(planted["age"]))
    mask = table[table.task == "mask"]["person_id"].head(2 * 2 * len(planted["swap"]))
    found = [f"{i:06d}" in set(gender) for i in planted["gender"]]
    found += [f"{i:06d}" in set(age) for i in planted["age"]]
    found += [f"{i:06d}" in set(mask) for i in planted["swap"]]
    assert np.mean(found) >= 0.8, found
    # a clean person never outranks the planted ones in gender: the first four are planted
    assert set(gender.head(4)) == {f"{i:06d}" for i in planted["gender"]}


def test_fixes_csv_loads_as_a_user_fixes_file_and_undoes_the_planted_errors(tmp_path):
    run, planted, gender, age = _oof_run(tmp_path)
    out = tmp_path / "review"
    assert runs_main(["suspects", str(run), "--top", "6", "--out", str(out)]) == 0
    fixes = {(f.person_id, f.field): f.value for f in load_fixes(out / "fixes.csv")}
    for i in planted["gender"]:
        assert fixes[(f"{i:06d}", "gender")] == ("male", "female")[gender[i]]
    for i in planted["swap"]:
        assert fixes[(f"{i:06d}", "swap_mask")] == "1"
    for i in planted["age"]:
        suggested = int(fixes[(f"{i:06d}", "age")])
        assert (suggested >= 30) + (suggested >= 60) == age[i]  # back in the true group
    listed = pd.read_csv(out / "suspects.csv", dtype=str, keep_default_na=False)
    assert list(listed.columns) == ["task", "person_id", "image_id", "p_own", "label", "predicted"]
    assert Image.open(out / "suspects.png").size[0] > 100


def test_contact_sheet_shows_the_pictures_of_the_run_data(tmp_path, capsys):
    run, *_ = _oof_run(tmp_path, people=10)
    data = tmp_path / "data"
    for i in range(10):
        for stem in STEMS:
            path = data / "train" / "images" / f"{i:06d}_person" / f"{stem}.jpg"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (24, 32), (200, 30, 30)).save(path)
    out = tmp_path / "sheet"
    args = ["suspects", str(run), "--top", "3", "--out", str(out), "--data-dir", str(data)]
    assert runs_main(args) == 0
    sheet = np.asarray(Image.open(out / "suspects.png").convert("RGB")).astype(int)
    red = (sheet[..., 0] > 150) & (sheet[..., 1] < 80)
    assert red.sum() > 500  # the pictures are drawn, not "picture not found"
    assert "suggested fixes" in capsys.readouterr().out


def test_suspects_of_a_missing_run_is_one_line(tmp_path, capsys):
    assert runs_main(["suspects", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1


def test_suspects_with_a_top_below_one_is_refused_in_one_line(tmp_path, capsys):
    run, _, _, _ = _oof_run(tmp_path, people=10)
    assert runs_main(["suspects", str(run), "--top", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert_documented("suspects-top", err)


def test_no_fix_suggested_when_the_label_is_still_the_most_likely():
    run_table = pd.DataFrame(
        {
            "task": ["gender"],
            "person_id": ["1"],
            "image_id": [""],
            "p_own": [0.4],
            "label": ["male"],
            "predicted": ["male"],
            "own": [0],
            "pred": [0],
            "example": ["1/mask1"],
        }
    )
    assert fixes_table(Suspects(Path("r"), run_table)).empty
