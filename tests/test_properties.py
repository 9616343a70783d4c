"""Properties and fuzzing across modules, beyond the per-module ones.

Already covered elsewhere (not repeated): splits never leak (test_splits.py), soft vote of
arrays ignores member order and is exact on one member (test_ensemble.py), macro F1 and head
F1 equal sklearn (test_metrics.py), class id <-> heads (test_labels.py), fuzzed folder names
(test_data_layout.py). Here: the same promises one level up (files, run folders, row order),
the metrics not compared yet, round trips through files, and fuzzed bad input.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from kit.config import Config
from kit.data import DataError, read_train
from kit.ensemble import ensemble
from kit.labels import heads_from_joint, joint_from_heads
from kit.metrics import accuracy, confusion_matrix, per_class_f1
from kit.runfolder import (
    read_submission,
    read_test_probs,
    read_val_probs,
    write_probs,
    write_submission,
)
from kit.score import score_submission
from kit.splits import holdout, person_folds
from tests._layout_helpers import STEM_MASK, assert_frames_equal, expected_frame, write_train
from tests._runfolders import Preds, RunSpec, summary, write_run

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LABELS = list(range(18))

labels_st = st.lists(st.integers(0, 17), min_size=1, max_size=60)
label_pairs = labels_st.flatmap(
    lambda t: st.tuples(st.just(t), st.lists(st.integers(0, 17), min_size=len(t), max_size=len(t)))
)


def prob_matrix(n: int, k: int = 18) -> st.SearchStrategy[np.ndarray]:
    """(n, k) rows of probabilities, each row strictly positive and summing to 1."""
    rows = st.lists(st.floats(0.001, 1.0), min_size=k, max_size=k)
    return st.lists(rows, min_size=n, max_size=n).map(
        lambda r: np.asarray(r) / np.asarray(r).sum(1, keepdims=True)
    )


def _top_margin(p: np.ndarray) -> np.ndarray:
    top2 = np.sort(p, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


# ---- metrics agree with sklearn -------------------------------------------------------------


@FAST
@given(label_pairs)
def test_accuracy_confusion_and_per_class_f1_equal_sklearn(pair):
    t, p = (np.asarray(x) for x in pair)
    assert accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p))
    np.testing.assert_array_equal(confusion_matrix(t, p), skm.confusion_matrix(t, p, labels=LABELS))
    want = skm.f1_score(t, p, labels=LABELS, average=None, zero_division=0)
    np.testing.assert_allclose(per_class_f1(t, p), want, atol=1e-12)


@FAST
@given(label_pairs, st.randoms(use_true_random=False))
def test_scoring_a_submission_file_equals_sklearn_in_any_row_order(pair, rnd):
    truth, pred = pair
    ids = [f"{i:040x}.jpg" for i in range(len(truth))]
    order = list(range(len(ids)))
    rnd.shuffle(order)
    with tempfile.TemporaryDirectory() as tmp:
        answers, sub = Path(tmp) / "answers.csv", Path(tmp) / "sub.csv"
        pd.DataFrame({"ImageID": ids, "ans": truth}).to_csv(answers, index=False)
        shuffled = pd.DataFrame(
            {"ImageID": [ids[i] for i in order], "ans": [pred[i] for i in order]}
        )
        shuffled.to_csv(sub, index=False)
        scores = score_submission(sub, answers)
    f1 = skm.f1_score(truth, pred, labels=LABELS, average="macro", zero_division=0)
    assert scores["macro_f1"] == pytest.approx(f1)
    assert scores["accuracy"] == pytest.approx(skm.accuracy_score(truth, pred))
    assert scores["same_order"] == (order == sorted(order))


# ---- splits: the assignment belongs to the people, not to the row order --------------------

people_st = st.lists(
    st.tuples(st.integers(0, 1), st.integers(0, 2), st.integers(1, 7)), min_size=4, max_size=30
)


@FAST
@given(people_st, st.integers(0, 2**32 - 1), st.randoms(use_true_random=False))
def test_splits_do_not_depend_on_row_order(people, seed, rnd):
    rows = [
        (f"{i:06d}", f"{i:06d}/s{k}", g, a) for i, (g, a, n) in enumerate(people) for k in range(n)
    ]
    df = pd.DataFrame(rows, columns=["person_id", "image_id", "gender", "age_group"])
    order = list(range(len(df)))
    rnd.shuffle(order)
    shuffled = df.iloc[order].reset_index(drop=True)

    def by_image(frame: pd.DataFrame, side: np.ndarray) -> dict[str, int]:
        return dict(zip(frame["image_id"], np.asarray(side).astype(int), strict=True))

    folds = person_folds(df, n_splits=2, seed=seed)
    assert by_image(df, folds) == by_image(shuffled, person_folds(shuffled, n_splits=2, seed=seed))
    val = holdout(df, val_ratio=0.5, seed=seed)
    assert by_image(df, val) == by_image(shuffled, holdout(shuffled, val_ratio=0.5, seed=seed))


# ---- ensembling whole run folders -----------------------------------------------------------

N_VAL, N_TEST = 8, 6
VAL_IDS = [f"p{i}/mask1" for i in range(N_VAL)]
TEST_IDS = [f"{i:040x}.jpg" for i in range(N_TEST)]


def _runs(root: Path, members: list[tuple[np.ndarray, np.ndarray]]) -> list[Path]:
    truth = np.arange(N_VAL) % 18
    return [
        write_run(
            root,
            RunSpec(
                name=f"m{k}",
                summary=summary(0.5),
                preds=Preds(VAL_IDS, truth, val, TEST_IDS, test),
            ),
        )
        for k, (val, test) in enumerate(members)
    ]


def _member(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Validation and test probabilities of one member (seeded: a small example to shrink)."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.full(18, 0.3), N_VAL), rng.dirichlet(np.full(18, 0.3), N_TEST)


member_st = st.integers(0, 2**32 - 1).map(_member)


@FAST
@given(st.lists(member_st, min_size=2, max_size=3), st.randoms(use_true_random=False))
def test_soft_vote_of_run_folders_ignores_member_order(members, rnd):
    with tempfile.TemporaryDirectory() as tmp:
        runs = _runs(Path(tmp), members)
        shuffled = runs[:]
        rnd.shuffle(shuffled)
        a, b = ensemble(runs, "soft"), ensemble(shuffled, "soft")
    np.testing.assert_allclose(a.test_probs, b.test_probs, rtol=0, atol=1e-12)
    clear = _top_margin(a.test_probs) > 1e-9
    np.testing.assert_array_equal(a.test_labels[clear], b.test_labels[clear])
    assert a.val_macro_f1 == pytest.approx(b.val_macro_f1)


@FAST
@given(member_st)
def test_ensemble_of_one_run_folder_is_that_run(member):
    with tempfile.TemporaryDirectory() as tmp:
        (run,) = _runs(Path(tmp), [member])
        stored = read_test_probs(run / "test_probs.csv")
        for method in ("soft", "weighted", "geometric", "hard"):
            result = ensemble([run], method, weights=[1.0])
            np.testing.assert_array_equal(result.test_labels, stored.probs.argmax(1))
        soft = ensemble([run], "soft")
    np.testing.assert_array_equal(soft.test_probs, stored.probs)  # exactly, not approximately
    np.testing.assert_array_equal(soft.test_ids, np.asarray(TEST_IDS, dtype=object))


# ---- round trips through files ----------------------------------------------------------------


@FAST
@given(st.integers(1, 12).flatmap(prob_matrix))
def test_probability_files_round_trip(probs):
    n = len(probs)
    keys = pd.DataFrame(
        {
            "image_id": [f"{i:06d}_female_Asian_45/mask{i % 5 + 1}" for i in range(n)],
            "person_id": [f"{i:06d}" for i in range(n)],
            "label": np.arange(n) % 18,
            "fold": np.arange(n) % 5,
        }
    )
    with tempfile.TemporaryDirectory() as tmp:
        val_path, test_path = Path(tmp) / "val_probs.csv", Path(tmp) / "test_probs.csv"
        write_probs(val_path, keys, probs)
        write_probs(test_path, keys[["image_id"]], probs)
        val, test = read_val_probs(val_path), read_test_probs(test_path)
    for split in (val, test):
        assert split.ids.tolist() == keys["image_id"].tolist()
        np.testing.assert_allclose(split.probs, probs, rtol=1e-7, atol=1e-12)
        clear = _top_margin(probs) > 1e-6
        np.testing.assert_array_equal(split.labels[clear], probs.argmax(1)[clear])
    np.testing.assert_array_equal(val.truth, keys["label"])


@FAST
@given(labels_st)
def test_submissions_round_trip_in_info_order(labels):
    ids = [f"{i * 7919 % 10007:040x}.jpg" for i in range(len(labels))]  # not sorted
    info = pd.DataFrame({"ImageID": ids})
    with tempfile.TemporaryDirectory() as tmp:
        path = write_submission(np.asarray(labels), info, Path(tmp) / "submission.csv")
        back = read_submission(path)
    assert back.ids.tolist() == ids and back.labels.tolist() == list(labels)


@FAST
@given(st.integers(1, 10).flatmap(lambda n: st.tuples(*(prob_matrix(n, k) for k in (3, 2, 3)))))
def test_heads_to_joint_and_back(heads):
    recovered = heads_from_joint(joint_from_heads(*heads))
    for got, want in zip(recovered, heads, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-12)


@FAST
@given(
    st.floats(1e-6, 1.0),
    st.integers(1, 500),
    st.tuples(st.integers(8, 512), st.integers(8, 512)),
    st.dictionaries(st.sampled_from(["gamma", "smoothing"]), st.floats(0, 5), max_size=2),
    st.sampled_from([".yaml", ".json"]),
)
def test_config_files_round_trip(lr, epochs, size, kwargs, suffix):
    cfg = Config(lr=lr, epochs=epochs, image_size=size, loss_kwargs=kwargs)
    with tempfile.TemporaryDirectory() as tmp:
        path = cfg.save(Path(tmp) / f"cfg{suffix}")
        assert Config.load(path) == cfg
    assert Config.from_dict(cfg.to_dict()) == cfg


# ---- the layout reader: odd names, and fuzzed bad values --------------------------------------

ODD_FOLDERS = [
    "000001_female_Asian_45",
    "000002 copy_male_Asian_20",  # a space
    "000003.v2_female_Asian_60.",  # dots, one at the end
    "00000４_female_Asian_33",  # a full-width digit
    "名前_male_Asian_58",  # CJK
    "ünïcødé_female_Asian_29",  # accents (NFC)
    "emoji😀_male_Asian_30",  # outside the BMP
    "a..b_female_Asian_59",
]
EXTENSIONS = ["jpg", "JPG", "jpeg", "Jpeg", "JPEG", "png", "PNG"]


def test_odd_folder_names_and_extension_cases_parse(tmp_path):
    meta = pd.DataFrame(
        [
            (f"{i:06d}", ("female", "male")[i % 2], "Asian", str(20 + 5 * i), name)
            for i, name in enumerate(ODD_FOLDERS)
        ],
        columns=["id", "gender", "race", "age", "path"],
    )

    def ext_for(i: int, stem: str) -> str:  # every spelling, varying within and across people
        return EXTENSIONS[(i + list(STEM_MASK).index(stem)) % len(EXTENSIONS)]

    root = write_train(tmp_path, meta, ext_for, content=lambda ext: b"x")
    assert_frames_equal(read_train(root), expected_frame(root, meta, ext_for))


# any character a CSV cell can hold unquoted or quoted (no line breaks, controls, surrogates)
_PRINTABLE = st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"))
value_st = st.one_of(
    st.sampled_from(["male", "female", " Male ", "FEMALE", "m", "", "none", "femal"]),
    st.sampled_from(["0", "45", "120", "121", "-1", "4.5", "1e2", "٣", " 30 ", "", "nan"]),
    st.text(_PRINTABLE, max_size=6),
)


def _valid_gender(v: str) -> bool:
    return v.strip().lower() in ("male", "female")


def _valid_age(v: str) -> bool:
    s = v.strip()
    return s.isascii() and s.isdigit() and int(s) <= 120


@FAST
@given(st.lists(st.tuples(value_st, value_st), min_size=1, max_size=3))
def test_fuzzed_gender_and_age_parse_or_name_line_and_field(values):
    rows = [(f"{i:06d}", g, "Asian", a, f"{i:06d}_x") for i, (g, a) in enumerate(values)]
    meta = pd.DataFrame(rows, columns=["id", "gender", "race", "age", "path"])
    with tempfile.TemporaryDirectory() as tmp:
        root = write_train(Path(tmp), meta, content=lambda ext: b"x")
        bad = [
            (i, field)
            for i, (g, a) in enumerate(values)
            for field, ok in (("gender", _valid_gender(g)), ("age", _valid_age(a)))
            if not ok
        ]
        if not bad:
            frame = read_train(root)
            want = [
                (int(a.strip()), ("male", "female").index(g.strip().lower())) for g, a in values
            ]
            got = frame.groupby("person_id", sort=True)[["age", "gender"]].first()
            assert list(got.itertuples(index=False, name=None)) == want
            return
        with pytest.raises(DataError) as info:
            read_train(root)
        line, field = bad[0][0] + 2, bad[0][1]
        assert f"train.csv line {line}, field '{field}': found " in str(info.value)


cell_st = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5, 30),
    st.text(_PRINTABLE, max_size=5),
)


@FAST
@given(st.integers(0, 3), st.integers(0, 18), cell_st)
def test_fuzzed_probability_cells_fail_with_file_line_and_field(row, col, cell):
    probs = np.full((4, 18), 1 / 18)
    frame = pd.DataFrame(probs, columns=[f"p{k}" for k in range(18)])
    frame.insert(0, "image_id", [f"{i:040x}.jpg" for i in range(4)])
    column = frame.columns[col]
    frame[column] = frame[column].astype(object)
    frame.loc[row, column] = cell
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "test_probs.csv"
        frame.to_csv(path, index=False)
        try:
            split = read_test_probs(path)
        except ValueError as err:  # the only acceptable failure, and it names the file
            assert str(path) in str(err)
            return
    # accepted: then it must be a valid probability table
    assert split.probs.shape == (4, 18)
    assert np.all(np.isfinite(split.probs)) and np.all(split.probs >= 0)
    np.testing.assert_allclose(split.probs.sum(1), 1, atol=1e-3)
