"""Models: timm backbones with one or three heads, probabilities, local pretrained weights
(the hub and its cache: tests/test_pretrained.py)."""

from __future__ import annotations

import pytest
import timm
import torch

from kit.config import Config
from kit.labels import encode
from kit.models import HEADS, create_model, to_probs
from tests._triggers import assert_documented


@pytest.mark.parametrize("model", ["test_resnet", "test_efficientnet", "test_vit"])
def test_single_head_gives_18_logits_and_multi_gives_three_heads(model):
    x = torch.randn(2, 3, 32, 48)  # not square: ViTs are built for the configured size
    single = create_model(Config(model=model, image_size=(32, 48)))
    assert single(x).shape == (2, 18)
    multi = create_model(Config(model=model, head="multi", image_size=(32, 48)))
    out = multi(x)
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "mask": (2, 3),
        "gender": (2, 2),
        "age": (2, 3),
    }


def test_heads_registry_lists_both_kinds():
    assert set(HEADS) >= {"single", "multi"}


def test_to_probs_single_is_softmax():
    logits = torch.tensor([[0.0] * 18, [float(k) for k in range(18)]])
    probs = to_probs(logits)
    assert torch.allclose(probs, torch.softmax(logits, 1))
    assert torch.allclose(probs.sum(1), torch.ones(2))


def test_to_probs_multi_is_the_product_of_head_softmaxes():
    torch.manual_seed(0)
    out = {"mask": torch.randn(3, 3), "gender": torch.randn(3, 2), "age": torch.randn(3, 3)}
    probs = to_probs(out)
    pm, pg, pa = (torch.softmax(out[h], 1) for h in ("mask", "gender", "age"))
    for m in range(3):
        for g in range(2):
            for a in range(3):
                expected = pm[:, m] * pg[:, g] * pa[:, a]
                assert torch.allclose(probs[:, encode(m, g, a)], expected, atol=1e-6)
    assert torch.allclose(probs.sum(1), torch.ones(3))


def test_pretrained_weights_from_a_local_file(tmp_path):
    torch.manual_seed(1)
    source = timm.create_model("test_resnet")  # with its 1000-class classifier, like timm files
    path = tmp_path / "weights.pth"
    torch.save(source.state_dict(), path)
    model = create_model(Config(model="test_resnet", pretrained=True, pretrained_file=str(path)))
    expected = source.state_dict()
    loaded = model.backbone.state_dict()
    assert loaded and set(loaded) <= set(expected)
    for name, tensor in loaded.items():
        assert torch.equal(tensor, expected[name]), name
    assert model.weights is not None and model.weights.source == "file"
    assert model.weights.file == str(path.resolve())
    fresh = create_model(Config(model="test_resnet"))
    assert not all(torch.equal(fresh.backbone.state_dict()[k], v) for k, v in loaded.items())


def test_missing_pretrained_file_is_named(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        create_model(Config(model="test_resnet", pretrained=True, pretrained_file=str(missing)))


def test_a_pretrained_file_that_is_not_a_weights_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "w.pth"
    path.write_text("hello")
    with pytest.raises(ValueError, match=r"cannot load pretrained_file .*w\.pth") as err:
        create_model(Config(model="test_resnet", pretrained_file=str(path)))
    assert_documented("pretrained-file-unreadable", str(err.value))


def test_a_pretrained_file_of_another_model_is_refused_counting_the_weights_it_holds(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(ValueError, match="it holds 0 of the backbone's 45 weights") as err:
        create_model(Config(model="test_resnet", pretrained_file=str(path)))
    assert_documented("pretrained-file-wrong-model", str(err.value))


def test_unknown_model_and_head_are_rejected():
    with pytest.raises(ValueError, match="timm.list_models"):
        create_model(Config(model="not_a_model_xyz"))
    with pytest.raises(ValueError, match="single"):
        create_model(Config(model="test_resnet", head="two"))
