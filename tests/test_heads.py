"""The head registry: a head registered by a teammate trains, validates and predicts by its kind."""

from __future__ import annotations

import doctest
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import kit.models
from kit.config import Config
from kit.data import read_train
from kit.data.dataset import ImageDataset
from kit.inference import load_run_model, predict
from kit.labels import decode
from kit.losses import build_criterion
from kit.models import HEADS, head_spec, head_target, register_head, to_probs
from kit.registry import UnknownName
from kit.train import fit

PROBS = [f"p{k}" for k in range(18)]


class _MLPHeads(nn.Module):
    """Three heads behind a shared hidden layer: a different module, the same output kind."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(in_features, 16), nn.ReLU())
        self.out = nn.ModuleDict({"mask": nn.Linear(16, 3), "gender": nn.Linear(16, 2)})
        self.out["age"] = nn.Linear(16, 3)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.hidden(x)
        return {name: layer(h) for name, layer in self.out.items()}


def _dropout_linear(in_features: int) -> nn.Module:
    return nn.Sequential(nn.Dropout(0.2), nn.Linear(in_features, 18))


@pytest.fixture
def new_heads() -> Iterator[None]:
    """``single_dropout`` (joint) and ``mlp_heads`` (heads), registered for one test only."""
    register_head("single_dropout", kind="joint")(_dropout_linear)
    register_head("mlp_heads", kind="heads")(_MLPHeads)
    try:
        yield
    finally:
        for name in ("single_dropout", "mlp_heads"):
            if name in HEADS:
                HEADS.unregister(name)


@pytest.mark.parametrize(
    ("head", "module"), [("single_dropout", nn.Dropout), ("mlp_heads", nn.ReLU)]
)
def test_a_registered_head_trains_through_fit_and_predicts(
    new_heads, tiny_cfg, tiny_data, head, module
):
    cfg = tiny_cfg.replace(head=head, epochs=1, max_steps_per_epoch=1)
    cfg.validate()
    run = fit(cfg)
    assert run.status == "complete"
    model, saved = load_run_model(run.run_dir)
    assert saved.head == head
    assert any(isinstance(m, module) for m in model.head.modules())  # the new head was trained
    val = pd.read_csv(run.run_dir / "val_probs.csv", dtype={"image_id": str, "person_id": str})
    np.testing.assert_allclose(val[PROBS].sum(axis=1), 1.0, atol=1e-5)
    probs = predict(run.run_dir, read_train(tiny_data).iloc[:3], Config(device="cpu", workers=0))
    assert probs.shape == (3, 18)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_targets_and_loss_follow_the_declared_kind(new_heads):
    frame = pd.DataFrame({"path": ["a.jpg", "b.jpg"], "label": [0, 17]})

    def dataset(head: str) -> ImageDataset:  # the target the head's declared kind trains on
        loader = lambda p: np.zeros((4, 4, 3))  # noqa: E731
        return ImageDataset(frame, None, target=head_target(head), loader=loader)

    joint, heads = dataset("single_dropout"), dataset("mlp_heads")
    assert joint[1][1] == 17
    assert heads[1][1] == dict(zip(("mask", "gender", "age"), decode(17), strict=True))

    torch.manual_seed(0)
    logits, target = torch.randn(5, 18), torch.tensor([0, 3, 17, 9, 9])
    criterion = build_criterion(Config(head="single_dropout"))
    assert torch.allclose(criterion(logits, target), F.cross_entropy(logits, target))
    out = {"mask": torch.randn(5, 3), "gender": torch.randn(5, 2), "age": torch.randn(5, 3)}
    m, g, a = (torch.as_tensor(x) for x in decode(target.numpy()))
    expected = F.cross_entropy(out["mask"], m) + F.cross_entropy(out["gender"], g)
    expected = expected + 2.0 * F.cross_entropy(out["age"], a)
    criterion = build_criterion(Config(head="mlp_heads", head_weights={"age": 2.0}))
    assert torch.allclose(criterion(out, {"mask": m, "gender": g, "age": a}), expected)


def test_to_probs_reads_the_output_by_kind():
    torch.manual_seed(0)
    logits = torch.randn(4, 18)
    assert torch.allclose(to_probs(logits, "joint"), torch.softmax(logits, 1))
    out = {"mask": torch.randn(4, 3), "gender": torch.randn(4, 2), "age": torch.randn(4, 3)}
    probs = to_probs(out, "heads")
    # the 18-way probabilities marginalise back to each head's softmax
    cube = probs.reshape(4, 3, 2, 3)
    assert torch.allclose(cube.sum((2, 3)), torch.softmax(out["mask"], 1), atol=1e-6)
    assert torch.allclose(cube.sum((1, 2)), torch.softmax(out["age"], 1), atol=1e-6)
    with pytest.raises(ValueError, match="unknown output kind 'ranks'"):
        to_probs(logits, "ranks")


def test_registry_errors_name_the_head_and_what_is_valid(new_heads):
    valid = r"\['age', 'gender', 'heads', 'joint', 'mask'\]"
    with pytest.raises(ValueError, match=r"kind 'logits'.*valid: " + valid):
        register_head("x_head", kind="logits")
    with pytest.raises(ValueError, match="'single_dropout' is already registered"):
        register_head("single_dropout", kind="joint")(nn.Identity)
    with pytest.raises(ValueError, match="identifier"):
        register_head("two words", kind="joint")
    with pytest.raises(ValueError, match=r"unknown head 'singel' \(did you mean 'single'\?\)"):
        head_spec("singel")
    with pytest.raises(ValueError, match="config field 'head'.*'no_such_head'"):
        Config(head="no_such_head").validate()


def test_the_module_example_runs():
    before = HEADS.items()
    result = doctest.testmod(kit.models, raise_on_error=False, verbose=False)
    assert result.attempted >= 3 and result.failed == 0
    assert before == HEADS.items()


def test_each_head_exposes_the_training_target_of_its_kind(new_heads):
    assert head_target("single")(17) == 17 and head_target("single_dropout")(5) == 5
    assert head_target("multi")(17) == dict(zip(("mask", "gender", "age"), decode(17), strict=True))
    assert head_target("mlp_heads") is head_target("multi")  # by kind, not by module
    with pytest.raises(UnknownName, match=r"unknown head 'mlp_head' \(did you mean 'mlp_heads'"):
        head_target("mlp_head")
