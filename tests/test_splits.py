"""kit.splits: person-level, stratified, exact and deterministic splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kit.labels import age_to_group
from kit.splits import holdout, person_folds
from tests._triggers import assert_documented

REAL_META = Path(__file__).parent / "data" / "real_train_meta.csv"
STEMS = [("mask1", 0), ("mask2", 0), ("mask3", 0), ("mask4", 0), ("mask5", 0)]
STEMS += [("incorrect_mask", 1), ("normal", 2)]

# Stated tolerances: each fold's (or the validation side's) share of every gender x age-group
# cell, counted in images, may differ from the whole frame's share by at most this much.
TOL_REAL = 0.01  # 2,700 people, ~540 per fold
TOL_SYNTH = 0.04  # 240 people, ~48 per fold: one person is ~2% of a fold


def _expand(people: pd.DataFrame) -> pd.DataFrame:
    """One row per image, like kit.data.read_train: 7 rows per person, 3 mask values."""
    rows = [
        {
            "image_id": f"{p.path}/{stem}",
            "person_id": p.id,
            "gender": p.gender,
            "age": p.age,
            "age_group": int(age_to_group(int(p.age))),
            "mask": mask,
        }
        for p in people.itertuples()
        for stem, mask in STEMS
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def real() -> pd.DataFrame:
    meta = pd.read_csv(REAL_META, dtype={"id": str})
    meta["gender"] = meta["gender"].map({"male": 0, "female": 1})
    assert meta["gender"].notna().all()
    return _expand(meta)


@pytest.fixture(scope="module")
def synth() -> pd.DataFrame:
    rng = np.random.default_rng(123)
    n = 240
    people = pd.DataFrame(
        {
            "id": [f"{i:06d}" for i in rng.permutation(n)],
            "gender": rng.choice([0, 1], n, p=[0.4, 0.6]),
            "age": rng.choice([20, 45, 60], n, p=[0.45, 0.45, 0.10]),
        }
    )
    people["path"] = people["id"]
    frame = _expand(people)
    # Some people lose images (as after cleaning), and rows arrive in no particular order.
    frame = frame.drop(index=rng.choice(len(frame), 100, replace=False))
    return frame.sample(frac=1.0, random_state=1).reset_index(drop=True)


def _assert_no_leak(df: pd.DataFrame, side: np.ndarray) -> None:
    per_person = pd.Series(side).groupby(df["person_id"].to_numpy()).nunique()
    assert (per_person == 1).all(), per_person[per_person > 1].head()


def _assert_stratified(df: pd.DataFrame, side: np.ndarray, tol: float) -> None:
    cell = df["gender"].astype(str) + "_" + df["age_group"].astype(str)
    whole = cell.value_counts(normalize=True)
    for value in np.unique(side):
        part = cell[side == value].value_counts(normalize=True).reindex(whole.index, fill_value=0)
        worst = float((part - whole).abs().max())
        assert worst <= tol, f"side {value}: cell share off by {worst:.4f} > {tol}"


@pytest.mark.parametrize(("name", "tol"), [("real", TOL_REAL), ("synth", TOL_SYNTH)])
def test_person_folds(name, tol, request):
    df = request.getfixturevalue(name)
    folds = person_folds(df, n_splits=5, seed=0)
    assert folds.shape == (len(df),)
    assert np.issubdtype(folds.dtype, np.integer)
    assert set(np.unique(folds)) == set(range(5))  # every row in some fold, no fold empty
    _assert_no_leak(df, folds)
    _assert_stratified(df, folds, tol)
    # Folds hold nearly equal numbers of people.
    people_per_fold = (
        pd.Series(folds).groupby(folds).apply(lambda s: df.loc[s.index, "person_id"].nunique())
    )
    assert people_per_fold.max() - people_per_fold.min() <= 1

    np.testing.assert_array_equal(folds, person_folds(df, n_splits=5, seed=0))
    assert not np.array_equal(folds, person_folds(df, n_splits=5, seed=1))


def test_real_duplicate_id_stays_together(real):
    rows = real["person_id"] == "003397"
    assert rows.sum() == 14  # two folders share the id
    assert len(np.unique(person_folds(real, seed=3)[rows])) == 1
    assert len(np.unique(holdout(real, seed=3)[rows])) == 1


def test_row_order_does_not_matter(synth):
    shuffled = synth.sample(frac=1.0, random_state=7)
    folds = pd.Series(person_folds(synth, seed=4), index=synth.index)
    again = pd.Series(person_folds(shuffled, seed=4), index=shuffled.index)
    pd.testing.assert_series_equal(folds, again.reindex(folds.index))


@pytest.mark.parametrize(("name", "tol"), [("real", TOL_REAL), ("synth", TOL_SYNTH)])
def test_holdout(name, tol, request):
    df = request.getfixturevalue(name)
    n_people = df["person_id"].nunique()
    for ratio in (0.2, 0.1, 0.33):
        val = holdout(df, val_ratio=ratio, seed=0)
        assert val.dtype == bool and val.shape == (len(df),)
        assert df.loc[val, "person_id"].nunique() == round(ratio * n_people)
        _assert_no_leak(df, val)
        _assert_stratified(df, val, tol)
    val = holdout(df, seed=5)
    np.testing.assert_array_equal(val, holdout(df, seed=5))
    assert not np.array_equal(val, holdout(df, seed=6))


def test_real_holdout_has_exactly_540_people(real):
    assert real.loc[holdout(real, val_ratio=0.2), "person_id"].nunique() == 540


def test_age_group_computed_from_age_when_missing(synth):
    np.testing.assert_array_equal(
        person_folds(synth.drop(columns="age_group"), seed=2), person_folds(synth, seed=2)
    )


def test_first_row_decides_a_person_with_disagreeing_rows():
    base = {"person_id": list("abcdefgh"), "gender": [0, 0, 1, 1, 0, 1, 0, 1]}
    base["age_group"] = [0, 1, 0, 1, 2, 2, 0, 1]
    first = pd.DataFrame(base)
    # Person "a" gets a second row that disagrees (male/<30 first, then female/>=60).
    extra = pd.DataFrame({"person_id": ["a"], "gender": [1], "age_group": [2]})
    disagree = pd.concat([first, extra], ignore_index=True)
    last = first.copy()
    last.loc[0, ["gender", "age_group"]] = [1, 2]
    differs = False
    for seed in range(20):
        got = person_folds(disagree, n_splits=2, seed=seed)
        np.testing.assert_array_equal(got[:8], person_folds(first, n_splits=2, seed=seed))
        differs |= not np.array_equal(got[:8], person_folds(last, n_splits=2, seed=seed))
    assert differs  # the check above could tell first row from last row


def test_bad_input_raises():
    df = pd.DataFrame({"person_id": list("abc"), "gender": [0, 1, 0], "age_group": [0, 1, 2]})
    with pytest.raises(ValueError, match="3 people cannot fill 5 folds"):
        person_folds(df, n_splits=5)
    with pytest.raises(ValueError, match="n_splits"):
        person_folds(df, n_splits=1)
    for ratio in (0.0, 1.0, -0.2, 1.5):
        with pytest.raises(ValueError, match="val_ratio"):
            holdout(df, val_ratio=ratio)
    with pytest.raises(ValueError, match="0 validation people") as err:
        holdout(df, val_ratio=0.1)
    assert_documented("split-too-small", str(err.value))
    with pytest.raises(ValueError, match="'gender'"):
        person_folds(df.drop(columns="gender"), n_splits=2)
    with pytest.raises(ValueError, match="'person_id' is empty at row 1"):
        person_folds(df.assign(person_id=["a", None, "c"]), n_splits=2)
    with pytest.raises(ValueError, match="'pid'"):
        person_folds(df, n_splits=2, person_col="pid")


people_frames = st.integers(2, 30).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 1), min_size=n, max_size=n),
        st.lists(st.integers(0, 2), min_size=n, max_size=n),
        st.lists(st.integers(1, 4), min_size=n, max_size=n),
        st.integers(0, 2**32 - 1),
    )
)


def _frame(gender, age_group, n_rows) -> pd.DataFrame:
    rows = [
        (f"p{i}", g, a)
        for i, (g, a, k) in enumerate(zip(gender, age_group, n_rows, strict=True))
        for _ in range(k)
    ]
    return pd.DataFrame(rows, columns=["person_id", "gender", "age_group"])


@settings(max_examples=40, deadline=None)
@given(people_frames, st.integers(2, 5), st.floats(0.05, 0.95))
def test_splits_never_leak(frame_args, n_splits, ratio):
    *cols, seed = frame_args
    df = _frame(*cols)
    n_people = len(cols[0])
    if n_people < n_splits:
        with pytest.raises(ValueError, match=f"{n_people} people cannot fill"):
            person_folds(df, n_splits=n_splits, seed=seed)
    else:
        folds = person_folds(df, n_splits=n_splits, seed=seed)
        _assert_no_leak(df, folds)
        assert set(np.unique(folds)) == set(range(n_splits))
    n_val = round(ratio * n_people)
    if 0 < n_val < n_people:
        val = holdout(df, val_ratio=ratio, seed=seed)
        _assert_no_leak(df, val)
        assert df.loc[val, "person_id"].nunique() == n_val
    else:
        with pytest.raises(ValueError, match="validation people"):
            holdout(df, val_ratio=ratio, seed=seed)
