import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from kit.labels import (
    NUM_CLASSES,
    AgeGroup,
    Gender,
    Mask,
    age_to_group,
    class_name,
    decode,
    encode,
    heads_from_joint,
    joint_from_heads,
)

# The class table of domain.md, written out by hand as (mask, gender, age group) names.
TABLE = {
    0: ("wear", "male", "<30"),
    1: ("wear", "male", "30-59"),
    2: ("wear", "male", ">=60"),
    3: ("wear", "female", "<30"),
    4: ("wear", "female", "30-59"),
    5: ("wear", "female", ">=60"),
    6: ("incorrect", "male", "<30"),
    7: ("incorrect", "male", "30-59"),
    8: ("incorrect", "male", ">=60"),
    9: ("incorrect", "female", "<30"),
    10: ("incorrect", "female", "30-59"),
    11: ("incorrect", "female", ">=60"),
    12: ("not_wear", "male", "<30"),
    13: ("not_wear", "male", "30-59"),
    14: ("not_wear", "male", ">=60"),
    15: ("not_wear", "female", "<30"),
    16: ("not_wear", "female", "30-59"),
    17: ("not_wear", "female", ">=60"),
}
MASKS = {"wear": Mask.WEAR, "incorrect": Mask.INCORRECT, "not_wear": Mask.NOT_WEAR}
GENDERS = {"male": Gender.MALE, "female": Gender.FEMALE}
AGES = {"<30": AgeGroup.YOUNG, "30-59": AgeGroup.MIDDLE, ">=60": AgeGroup.OLD}

labels_st = st.integers(0, NUM_CLASSES - 1)
label_arrays = hnp.arrays(np.int64, st.integers(1, 40), elements=labels_st)


def _probs(n: int, k: int, seed: int) -> np.ndarray:
    p = np.random.default_rng(seed).random((n, k)) + 1e-3
    return p / p.sum(1, keepdims=True)


@pytest.mark.parametrize("label", sorted(TABLE))
def test_every_class_matches_the_domain_table(label):
    m, g, a = TABLE[label]
    assert encode(MASKS[m], GENDERS[g], AGES[a]) == label
    assert decode(label) == (MASKS[m], GENDERS[g], AGES[a])
    assert class_name(label) == f"{m}/{g}/{a}"


def test_named_examples_from_domain():
    assert class_name(0) == "wear/male/<30"
    assert encode(Mask.WEAR, Gender.FEMALE, AgeGroup.OLD) == 5
    assert encode(Mask.NOT_WEAR, Gender.FEMALE, AgeGroup.OLD) == 17


@given(labels_st)
def test_round_trip_scalar(label):
    assert encode(*decode(label)) == label


@settings(max_examples=50, deadline=None)
@given(label_arrays)
def test_vectorised_equals_scalar_numpy_and_torch(labels):
    m, g, a = decode(labels)
    assert [tuple(t) for t in zip(m, g, a, strict=True)] == [decode(int(x)) for x in labels]
    assert np.array_equal(encode(m, g, a), labels)
    tm, tg, ta = decode(torch.from_numpy(labels))
    assert torch.equal(tm, torch.from_numpy(m)) and torch.equal(ta, torch.from_numpy(a))
    assert torch.equal(encode(tm, tg, ta), torch.from_numpy(labels))


@pytest.mark.parametrize(
    ("call", "bad"),
    [
        (lambda: decode(18), "18"),
        (lambda: decode(-1), "-1"),
        (lambda: decode(np.array([0, 3, 25])), "25"),
        (lambda: encode(3, 0, 0), "mask"),
        (lambda: encode(0, 2, 0), "gender"),
        (lambda: encode(0, 0, torch.tensor([0, 7])), "7"),
        (lambda: decode(np.array([0.5])), "integer"),
    ],
)
def test_out_of_range_names_the_value(call, bad):
    with pytest.raises(ValueError, match=bad):
        call()


@given(st.integers(0, 120))
def test_age_to_group_matches_definition(age):
    expected = 0 if age < 30 else (1 if age < 60 else 2)
    assert age_to_group(age) == expected
    expected58 = 0 if age < 30 else (1 if age < 58 else 2)
    assert age_to_group(age, thresholds=(30, 58)) == expected58


def test_age_to_group_vectorised_and_tensor():
    ages = np.array([18, 29, 30, 57, 58, 59, 60])
    assert age_to_group(ages).tolist() == [0, 0, 1, 1, 1, 1, 2]
    assert age_to_group(ages, (30, 58)).tolist() == [0, 0, 1, 1, 2, 2, 2]
    assert age_to_group(torch.tensor(ages)).tolist() == [0, 0, 1, 1, 1, 1, 2]
    with pytest.raises(ValueError, match="increasing"):
        age_to_group(40, (60, 30))


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 20), st.integers(0, 10_000))
def test_joint_from_heads_is_the_product_and_sums_to_one(n, seed):
    pm, pg, pa = _probs(n, 3, seed), _probs(n, 2, seed + 1), _probs(n, 3, seed + 2)
    joint = joint_from_heads(pm, pg, pa)
    assert joint.shape == (n, NUM_CLASSES)
    assert np.allclose(joint.sum(1), 1.0)
    for label in range(NUM_CLASSES):
        m, g, a = decode(label)
        assert np.allclose(joint[:, label], pm[:, m] * pg[:, g] * pa[:, a])
    back = heads_from_joint(joint)
    for got, want in zip(back, (pm, pg, pa), strict=True):
        assert np.allclose(got, want)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 20), st.integers(0, 10_000))
def test_heads_from_joint_marginals_sum_to_one_and_torch_agrees(n, seed):
    p18 = _probs(n, NUM_CLASSES, seed)
    heads = heads_from_joint(p18)
    theads = heads_from_joint(torch.from_numpy(p18))
    for h, th, k in zip(heads, theads, (3, 2, 3), strict=True):
        assert h.shape == (n, k) and np.allclose(h.sum(1), 1.0)
        assert np.allclose(th.numpy(), h)
    # marginal of mask is the sum over the six classes of that mask
    assert np.allclose(heads[0][:, 1], p18[:, 6:12].sum(1))


def test_shape_errors():
    with pytest.raises(ValueError, match=r"\(n, 18\)"):
        heads_from_joint(np.ones((2, 17)))
    with pytest.raises(ValueError, match="p_gender"):
        joint_from_heads(np.ones((2, 3)), np.ones((2, 3)), np.ones((2, 3)))
