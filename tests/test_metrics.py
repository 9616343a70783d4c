"""kit.metrics against sklearn.metrics (the competition's own scorer) and hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from kit import metrics
from kit.labels import class_name

ALL = list(range(18))


def _sk_macro(t, p, labels=ALL):
    return skm.f1_score(t, p, labels=labels, average="macro", zero_division=0)


label_pairs = st.integers(1, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 17), min_size=n, max_size=n),
        st.lists(st.integers(0, 17), min_size=n, max_size=n),
    )
)


@settings(max_examples=50, deadline=None)
@given(label_pairs)
def test_macro_f1_equals_sklearn(pair):
    t, p = pair
    assert metrics.macro_f1(t, p) == pytest.approx(_sk_macro(t, p), abs=1e-12)
    np.testing.assert_allclose(
        metrics.per_class_f1(t, p),
        skm.f1_score(t, p, labels=ALL, average=None, zero_division=0),
        atol=1e-12,
    )
    np.testing.assert_array_equal(
        metrics.confusion_matrix(t, p), skm.confusion_matrix(t, p, labels=ALL)
    )
    assert metrics.accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p))


def test_f1_from_confusion_scores_one_matrix_or_a_stack_of_them():
    rng = np.random.default_rng(0)
    y, preds = rng.integers(0, 18, 200), rng.integers(0, 18, (4, 200))
    preds[0] = y  # perfect: every present class scores 1
    stack = np.stack([metrics.confusion_matrix(y, p) for p in preds])
    got = metrics.f1_from_confusion(stack)
    assert got.shape == (4, 18)
    for row, p in zip(got, preds, strict=True):
        want = skm.f1_score(y, p, labels=ALL, average=None, zero_division=0)
        np.testing.assert_allclose(row, want, atol=1e-12)
        alone = metrics.f1_from_confusion(metrics.confusion_matrix(y, p))
        np.testing.assert_array_equal(alone, row)
    assert got.mean(-1) == pytest.approx([_sk_macro(y, p) for p in preds], abs=1e-12)
    # 2 classes, hand-computed: class 0 tp=1 fp=0 fn=1 -> 2/3; class 1 tp=2 fp=1 fn=0 -> 4/5
    np.testing.assert_allclose(metrics.f1_from_confusion([[1, 1], [0, 2]]), [2 / 3, 4 / 5])
    with pytest.raises(ValueError, match=r"shape \(\.\.\., c, c\), got shape \(2, 3\)"):
        metrics.f1_from_confusion(np.zeros((2, 3)))


def test_absent_classes_count_as_zero():
    # Only classes 0 and 1 occur, both predicted perfectly: 2 of 18 classes have F1 = 1.
    t = p = [0, 1, 1, 0]
    assert metrics.macro_f1(t, p) == pytest.approx(2 / 18)
    assert metrics.macro_f1(t, p, num_classes=2) == pytest.approx(1.0)


def test_hand_computed_case():
    # class 0: tp=1 fp=1 fn=1 -> F1 = 2/(2+1+1) = 0.5 ; class 1: tp=1 fp=1 fn=1 -> 0.5 ;
    # class 2: tp=0 fp=0 fn=1 -> 0 ; class 3 only predicted: tp=0 fp=1 -> 0
    t = [0, 0, 1, 1, 2]
    p = [0, 1, 1, 0, 3]
    assert metrics.macro_f1(t, p, num_classes=4) == pytest.approx((0.5 + 0.5 + 0 + 0) / 4)


def test_accepts_numpy_torch_and_float_labels():
    t = np.array([3, 4, 5, 17])
    p = torch.tensor([3, 4, 0, 17])
    expected = _sk_macro(t, p.numpy())
    assert metrics.macro_f1(t, p) == pytest.approx(expected)
    assert metrics.macro_f1(t.astype(float), p.numpy().astype(np.float32)) == pytest.approx(
        expected
    )


@settings(max_examples=30, deadline=None)
@given(label_pairs)
def test_head_f1_and_summary_equal_sklearn_on_decoded_heads(pair):
    t, p = np.array(pair[0]), np.array(pair[1])
    # Independent decoding: class = mask*6 + gender*3 + age
    heads_t = {"mask": t // 6, "gender": (t // 3) % 2, "age": t % 3}
    heads_p = {"mask": p // 6, "gender": (p // 3) % 2, "age": p % 3}
    sizes = {"mask": 3, "gender": 2, "age": 3}
    expected = {h: _sk_macro(heads_t[h], heads_p[h], list(range(sizes[h]))) for h in sizes}
    got = metrics.head_f1(t, p)
    assert set(got) == {"mask", "gender", "age"}
    for head in sizes:
        assert got[head] == pytest.approx(expected[head], abs=1e-12)

    summary = metrics.summarize(t, p)
    assert set(summary) == {
        "macro_f1",
        "accuracy",
        "f1_mask",
        "f1_gender",
        "f1_age",
        "confusion",
    }
    assert summary["macro_f1"] == pytest.approx(_sk_macro(t, p), abs=1e-12)
    assert summary["accuracy"] == pytest.approx(skm.accuracy_score(t, p))
    for head in sizes:
        assert summary[f"f1_{head}"] == pytest.approx(expected[head], abs=1e-12)
    assert summary["confusion"] == skm.confusion_matrix(t, p, labels=ALL).tolist()
    assert all(type(v) is int for row in summary["confusion"] for v in row)


def test_report_lists_every_class_with_sklearn_numbers():
    rng = np.random.default_rng(0)
    t = rng.integers(0, 18, 300)
    p = np.where(rng.random(300) < 0.6, t, rng.integers(0, 18, 300))
    p[p == 8] = 9  # class 8 never predicted: precision must read 0, not fail
    text = metrics.report(t, p)
    prec, rec, f1, support = skm.precision_recall_fscore_support(t, p, labels=ALL, zero_division=0)
    for c in ALL:
        line = next(ln for ln in text.splitlines() if class_name(c) in ln)
        fields = line.split()
        assert fields[0] == str(c)
        assert [float(x) for x in fields[2:5]] == pytest.approx([prec[c], rec[c], f1[c]], abs=5e-5)
        assert int(fields[5]) == support[c]
    assert f"{_sk_macro(t, p):.4f}" in text
    assert f"{skm.accuracy_score(t, p):.4f}" in text
    for head in ("mask", "gender", "age"):
        assert head in text


@pytest.mark.parametrize(
    ("t", "p", "fragment"),
    [
        ([0, 1], [0], "y_true has 2 labels but y_pred has 1"),
        ([0, 18], [0, 1], "y_true holds 18 at position 1; expected 0..17"),
        ([0, 1], [-1, 1], "y_pred holds -1 at position 0"),
        ([0.0, np.nan], [0, 1], "y_true holds nan at position 1"),
        ([0, 1], [0.5, 1], "y_pred holds 0.5"),
        ([[0, 1]], [[0, 1]], "1-D"),
        ([], [], "empty"),
        (["a"], [0], "dtype"),
    ],
)
def test_bad_input_raises_naming_what_was_found(t, p, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        metrics.macro_f1(t, p)


def test_every_entry_point_validates():
    for fn in (metrics.summarize, metrics.report, metrics.head_f1, metrics.confusion_matrix):
        with pytest.raises(ValueError, match="18"):
            fn([18], [0])
    with pytest.raises(ValueError, match="2 labels"):
        metrics.accuracy([0, 1], [0])
