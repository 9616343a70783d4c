"""kit.losses against torch, sklearn and hand-computed values."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score
from torch import nn

from kit.losses import (
    LOSSES,
    CrossEntropy,
    FocalLoss,
    MultiHeadLoss,
    SoftF1Loss,
    build_loss,
    build_multihead_loss,
    check_spec,
    head_loss_args,
    register_loss,
)
from tests._triggers import assert_documented

torch.set_num_threads(1)


@st.composite
def batches(draw, min_c=2):
    n = draw(st.integers(1, 16))
    c = draw(st.integers(min_c, 18))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * draw(st.sampled_from([0.1, 1.0, 5.0]))
    target = torch.randint(0, c, (n,), generator=g)
    weights = torch.rand(c, generator=g) + 0.1
    return logits, target, weights


@settings(max_examples=40, deadline=None)
@given(batches())
def test_focal_gamma_zero_is_cross_entropy(batch):
    logits, target, weights = batch
    got = build_loss("focal", gamma=0.0)(logits, target)
    torch.testing.assert_close(got, F.cross_entropy(logits, target))
    got_w = build_loss("focal", gamma=0.0, class_weights=weights.tolist())(logits, target)
    torch.testing.assert_close(got_w, F.cross_entropy(logits, target, weight=weights))


@settings(max_examples=40, deadline=None)
@given(batches(), st.sampled_from([0.5, 1.0, 2.0, 3.0]))
def test_focal_matches_formula_from_probabilities(batch, gamma):
    logits, target, weights = batch
    # The reference starts from the float32 log-probabilities the loss itself sees: near p = 1,
    # float32 log_softmax rounds log p to a multiple of the logit's ulp (~5e-7 at 6.6), and the
    # focal formula, not that rounding, is what this test is about (hypothesis found a batch
    # where the rounding alone was 7% of a 1e-10 loss).
    log_p = F.log_softmax(logits.float(), 1).double()[torch.arange(len(target)), target]
    per_sample = -((-torch.expm1(log_p)) ** gamma) * log_p
    w = weights.double()[target]
    got = FocalLoss(gamma=gamma, class_weights=weights)(logits, target)
    assert got.item() == pytest.approx((w * per_sample).sum().item() / w.sum().item(), rel=1e-4)
    got = FocalLoss(gamma=gamma)(logits, target)
    assert got.item() == pytest.approx(per_sample.mean().item(), rel=1e-4, abs=1e-7)


def test_focal_hand_computed():
    # logits (0, ln 3) -> p = (1/4, 3/4) for both rows; targets 0 and 1.
    logits = torch.tensor([[0.0, math.log(3)], [0.0, math.log(3)]])
    target = torch.tensor([0, 1])
    fl0 = -(0.75**2) * math.log(0.25)  # 0.779...
    fl1 = -(0.25**2) * math.log(0.75)  # 0.0179...
    assert FocalLoss()(logits, target).item() == pytest.approx((fl0 + fl1) / 2, rel=1e-6)
    weighted = FocalLoss(class_weights=[2.0, 1.0])(logits, target).item()
    assert weighted == pytest.approx((2 * fl0 + fl1) / 3, rel=1e-6)
    gamma1 = FocalLoss(gamma=1.0)(logits[1:], target[1:]).item()
    assert gamma1 == pytest.approx(-0.25 * math.log(0.75), rel=1e-6)


@settings(max_examples=30, deadline=None)
@given(batches(), st.sampled_from([0.05, 0.1, 0.3]))
def test_label_smoothing_equals_torch(batch, s):
    logits, target, _ = batch
    expected = F.cross_entropy(logits, target, label_smoothing=s)
    torch.testing.assert_close(build_loss("label_smoothing", smoothing=s)(logits, target), expected)
    torch.testing.assert_close(
        build_loss("cross_entropy", label_smoothing=s)(logits, target), expected
    )
    torch.testing.assert_close(
        build_loss("label_smoothing")(logits, target),
        F.cross_entropy(logits, target, label_smoothing=0.1),
    )


def test_balanced_cross_entropy_equals_torch_with_independent_weights():
    rng = np.random.default_rng(0)
    c = 6
    train = rng.choice([0, 1, 2, 3, 5], size=200, p=[0.5, 0.2, 0.15, 0.1, 0.05])  # no class 4
    counts = Counter(train.tolist())
    weights = torch.tensor([len(train) / (c * counts[k]) if counts[k] else 0.0 for k in range(c)])
    assert weights[4] == 0  # the documented fallback for a class never seen in training
    logits = torch.randn(32, c, generator=torch.Generator().manual_seed(1))
    target = torch.tensor(rng.choice([0, 1, 2, 3, 5], size=32))
    loss = build_loss("cross_entropy", class_weights="balanced", labels=train, num_classes=c)
    torch.testing.assert_close(
        loss(logits, target), F.cross_entropy(logits, target, weight=weights)
    )
    torch.testing.assert_close(loss.weight, weights.float())
    focal0 = build_loss("focal", gamma=0, class_weights="balanced", labels=train, num_classes=c)
    torch.testing.assert_close(
        focal0(logits, target), F.cross_entropy(logits, target, weight=weights)
    )


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 16), st.integers(2, 18), st.integers(0, 2**31 - 1))
def test_f1_loss_on_near_one_hot_logits_is_one_minus_sklearn_macro_f1(n, c, seed):
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, c, (n,), generator=g)
    pred = torch.randint(0, c, (n,), generator=g)
    logits = 50.0 * F.one_hot(pred, c).float()
    expected = 1 - f1_score(
        target.numpy(), pred.numpy(), labels=list(range(c)), average="macro", zero_division=0
    )
    assert build_loss("f1")(logits, target).item() == pytest.approx(expected, abs=1e-5)


def test_f1_loss_uses_every_class_of_the_logits():
    # 18 classes, perfect predictions of classes 0 and 1 only: soft F1 = 2/18, not 2/3.
    target = torch.tensor([0, 1, 1])
    logits = 50.0 * F.one_hot(target, 18).float()
    assert SoftF1Loss()(logits, target).item() == pytest.approx(1 - 2 / 18, abs=1e-5)


SPECS = ["cross_entropy", "focal", "label_smoothing", "f1", "0.3*focal+0.7*f1"]


@settings(max_examples=25, deadline=None)
@given(batches(), st.sampled_from(SPECS), st.booleans(), st.sampled_from([1.0, 30.0, 200.0]))
def test_gradients_are_finite(batch, spec, one_class, scale):
    logits, target, _ = batch
    if one_class:
        target = torch.full_like(target, target[0].item())
    logits = (logits * scale).requires_grad_(True)
    for kwargs in ({}, {"gamma": 0.5}) if "focal" in spec else ({},):
        loss = build_loss(spec, **kwargs)(logits, target)
        assert loss.ndim == 0 and torch.isfinite(loss)
        (grad,) = torch.autograd.grad(loss, logits)
        assert torch.isfinite(grad).all()


def test_weighted_sum_spec_equals_manual_sum():
    g = torch.Generator().manual_seed(3)
    logits, target = torch.randn(10, 5, generator=g), torch.randint(0, 5, (10,), generator=g)
    focal = FocalLoss(gamma=1.5)(logits, target)
    f1 = SoftF1Loss()(logits, target)
    ce = F.cross_entropy(logits, target)
    for spec, expected in [
        ("0.5*focal+0.5*f1", 0.5 * focal + 0.5 * f1),
        ("focal+f1", focal + f1),
        (" .25 * cross_entropy +2*f1 ", 0.25 * ce + 2 * f1),
        ("1.5*focal", 1.5 * focal),
    ]:
        kwargs = {"gamma": 1.5} if "focal" in spec else {}
        torch.testing.assert_close(build_loss(spec, **kwargs)(logits, target), expected)


def test_kwargs_reach_only_the_components_that_take_them():
    loss = build_loss("focal+cross_entropy", gamma=3.0, class_weights=[1.0, 2.0], num_classes=2)
    focal, ce = loss.losses
    assert isinstance(focal, FocalLoss) and focal.gamma == 3.0
    assert isinstance(ce, CrossEntropy) and not hasattr(ce, "gamma")
    for module in (focal, ce):
        torch.testing.assert_close(module.weight, torch.tensor([1.0, 2.0]))


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: build_loss("focall"), r"unknown loss 'focall' .*cross_entropy.*focal"),
        (lambda: build_loss("focal+nope"), "unknown loss 'nope'"),
        (lambda: build_loss("f1", gamma=2.0), r"accepts \['gamma'\]"),
        (lambda: build_loss("focal+f1", smoothing=0.1), "smoothing"),
        (lambda: build_loss("0.5*"), "cannot read loss spec"),
        (lambda: build_loss("focal-f1"), "cannot read loss spec"),
        (lambda: build_loss("cross_entropy", class_weights="balanced"), "needs the training"),
        (lambda: build_loss("focal", class_weights="balanced", labels=[0, 1]), "num_classes"),
        (lambda: build_loss("focal", class_weights="even"), "'balanced' or numbers"),
        (lambda: build_loss("focal", class_weights=[1.0, 2.0], num_classes=3), "2 values"),
        (lambda: build_loss("focal", class_weights=[1.0, -2.0]), "non-negative"),
        (lambda: build_loss("focal", gamma=-1.0), "gamma"),
    ],
)
def test_bad_specs_raise(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call()


def test_bad_inputs_raise():
    loss = build_loss("cross_entropy", num_classes=18)
    with pytest.raises(ValueError, match="3 classes; this loss was built for 18"):
        loss(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"target holds 0\.\.5; logits have classes 0\.\.4"):
        build_loss("f1")(torch.randn(2, 5), torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="logits"):
        build_loss("f1")(torch.randn(4), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="dtype"):
        build_loss("focal")(torch.randn(2, 3), torch.tensor([0.0, 1.0]))
    with pytest.raises(TypeError, match="string"):
        build_loss(["focal"])


def test_a_soft_target_of_other_classes_than_the_logits_is_refused_naming_both():
    with pytest.raises(ValueError, match="soft target has 3 classes; logits have 18") as err:
        build_loss("cross_entropy")(torch.zeros(2, 18), torch.full((2, 3), 1 / 3))
    assert_documented("soft-target-classes", str(err.value))


def test_register_loss_adds_a_usable_component():
    @register_loss("_test_l1")
    def _l1(*, scale: float = 1.0) -> nn.Module:
        class L1(nn.Module):
            def forward(self, logits, target):
                return scale * (logits.softmax(1) - F.one_hot(target, logits.shape[1])).abs().mean()

        return L1()

    try:
        logits, target = torch.randn(6, 4), torch.randint(0, 4, (6,))
        manual = (logits.softmax(1) - F.one_hot(target, 4)).abs().mean()
        got = build_loss("f1+2*_test_l1", scale=3.0)(logits, target)
        torch.testing.assert_close(got, SoftF1Loss()(logits, target) + 6.0 * manual)
        with pytest.raises(ValueError, match="already registered"):
            register_loss("_test_l1")(lambda: nn.Identity())
    finally:
        LOSSES.unregister("_test_l1")


def _head_batch(n=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    sizes = {"mask": 3, "gender": 2, "age": 3}
    outputs = {h: torch.randn(n, k, generator=g) for h, k in sizes.items()}
    targets = {h: torch.randint(0, k, (n,), generator=g) for h, k in sizes.items()}
    return outputs, targets


def test_multihead_loss_is_weighted_sum_of_heads():
    outputs, targets = _head_batch()
    losses = {"mask": CrossEntropy(), "gender": SoftF1Loss(), "age": FocalLoss(gamma=0)}
    got = MultiHeadLoss(losses, weights={"age": 2.0, "mask": 0.5})(outputs, targets)
    expected = (
        0.5 * F.cross_entropy(outputs["mask"], targets["mask"])
        + SoftF1Loss()(outputs["gender"], targets["gender"])
        + 2.0 * F.cross_entropy(outputs["age"], targets["age"])
    )
    torch.testing.assert_close(got, expected)


def test_build_multihead_loss_with_balanced_age_weights_from_class_ids():
    rng = np.random.default_rng(2)
    labels18 = rng.integers(0, 18, 500)
    ages = labels18 % 3  # independent decoding: class = mask*6 + gender*3 + age
    age_w = torch.tensor([len(ages) / (3 * (ages == k).sum()) for k in range(3)]).float()
    loss = build_multihead_loss(
        {"mask": "cross_entropy", "gender": "label_smoothing", "age": "cross_entropy"},
        weights={"age": 3.0},
        labels=labels18,
        gender={"smoothing": 0.2},
        age={"class_weights": "balanced"},
    )
    outputs, targets = _head_batch(seed=5)
    expected = (
        F.cross_entropy(outputs["mask"], targets["mask"])
        + F.cross_entropy(outputs["gender"], targets["gender"], label_smoothing=0.2)
        + 3.0 * F.cross_entropy(outputs["age"], targets["age"], weight=age_w)
    )
    torch.testing.assert_close(loss(outputs, targets), expected)
    parts = loss.parts(outputs, targets)
    assert list(parts) == ["mask", "gender", "age"]


def test_multihead_errors():
    outputs, targets = _head_batch()
    loss = build_multihead_loss("focal")
    with pytest.raises(ValueError, match=r"missing \['age'\]"):
        loss({h: v for h, v in outputs.items() if h != "age"}, targets)
    with pytest.raises(ValueError, match=r"targets .*unexpected \['extra'\]"):
        loss(outputs, {**targets, "extra": targets["age"]})
    with pytest.raises(ValueError, match=r"specs .*missing \['gender'\]"):
        build_multihead_loss({"mask": "focal", "age": "focal"})
    with pytest.raises(ValueError, match="not heads"):
        build_multihead_loss("focal", agee={"gamma": 1.0})
    with pytest.raises(ValueError, match="no loss"):
        MultiHeadLoss({"mask": FocalLoss()}, weights={"age": 1.0})
    with pytest.raises(ValueError, match="accepts"):
        build_multihead_loss("f1", age={"gamma": 1.0})


def test_check_spec_reads_names_and_keywords_without_building():
    calls = []

    @register_loss("_test_spy")
    def _spy(*, width: int = 1) -> nn.Module:
        calls.append(width)
        return nn.Identity()

    try:
        assert check_spec("0.5*_test_spy+f1", {"width": 2, "eps": 1e-6}) == [
            (0.5, "_test_spy"),
            (1.0, "f1"),
        ]
        with pytest.raises(ValueError, match=r"each accepts: \{'_test_spy': \['width'\]\}"):
            check_spec("_test_spy", {"depth": 2})
        assert calls == []  # nothing was built
        assert "_test_spy(width)" in LOSSES.describe()
    finally:
        LOSSES.unregister("_test_spy")
    with pytest.raises(ValueError, match=r"loss spec 'f1\+focl': unknown loss 'focl' \(did you"):
        check_spec("f1+focl")


def test_head_loss_args_split_shared_and_per_head_keywords():
    args = head_loss_args(
        "focal", head_losses={"age": "f1"}, loss_kwargs={"gamma": 3, "age": {"eps": 0.1}}
    )
    assert args == {
        "mask": ("focal", {"gamma": 3}),
        "gender": ("focal", {"gamma": 3}),
        "age": ("f1", {"gamma": 3, "eps": 0.1}),
    }
