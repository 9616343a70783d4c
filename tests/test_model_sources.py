"""The three kinds of backbone behind one contract: timm names, ``torchvision/<name>`` with
torchvision's own weights (from a torch hub cache the test fills, the way the timm hub tests
fill the Hugging Face cache) and a factory registered with ``kit.register_model``."""

from __future__ import annotations

import urllib.error
from pathlib import Path
from urllib.parse import urlparse

import pytest
import torch
import torchvision
from torch import nn

from kit.config import Config
from kit.models import (
    MODELS,
    WeightsUnavailable,
    create_model,
    register_model,
    resolve_weights,
    torch_hub_checkpoints,
)
from kit.transforms import MEAN, STD, normalization
from tests._triggers import assert_documented

TV = "torchvision/resnet18"
WEIGHTS = torchvision.models.ResNet18_Weights.IMAGENET1K_V1


def fill_torch_cache(torch_home: Path, seed: int = 5) -> tuple[Path, dict[str, torch.Tensor]]:
    """``$TORCH_HOME/hub/checkpoints/<torchvision's file name>`` holding a freshly initialised
    resnet18's weights (what torchvision's download would leave there)."""
    torch.manual_seed(seed)
    state = torchvision.models.resnet18().state_dict()
    file = torch_home / "hub" / "checkpoints" / Path(urlparse(WEIGHTS.url).path).name
    file.parent.mkdir(parents=True)
    torch.save(state, file)
    return file, state


@pytest.fixture
def torch_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return fill_torch_cache(tmp_path / "torch")


def test_torchvision_pretrained_loads_the_cached_weights_and_their_normalisation(torch_cache):
    file, state = torch_cache
    cfg = Config(model=TV, pretrained=True, image_size=(64, 48))
    cfg.validate()
    model = create_model(cfg)
    assert model.weights.source == "cache" and Path(model.weights.file) == file
    assert model.weights.name == f"{TV}.IMAGENET1K_V1"
    torch.testing.assert_close(model.backbone.conv1.weight, state["conv1.weight"])
    assert isinstance(model.backbone.fc, nn.Identity)  # the classifier is gone
    assert model(torch.zeros(2, 3, 64, 48)).shape == (2, 18)
    norm, preset = normalization(cfg), WEIGHTS.transforms()
    assert (norm.mean, norm.std) == (tuple(preset.mean), tuple(preset.std))
    assert norm.source == f"{TV}.IMAGENET1K_V1" and norm.interpolation == "bilinear"


def test_torchvision_from_scratch_uses_the_competitions_statistics():
    norm = normalization(Config(model=TV))
    assert (norm.mean, norm.std, norm.source) == (MEAN, STD, "competition")


def test_torchvision_weights_neither_cached_nor_downloadable_name_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def unreachable(url, dst, *args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", unreachable)
    with pytest.raises(WeightsUnavailable) as err:
        resolve_weights(Config(model=TV, pretrained=True))
    message = str(err.value)
    assert_documented("torchvision-weights-unavailable", message)
    assert str(torch_hub_checkpoints()) in message and "TORCH_HOME" in message
    assert "weights='IMAGENET1K_V1'" in message and "--pretrained-file" in message
    assert "pretrained_tag" not in message and "timm" not in message
    assert not any(torch_hub_checkpoints().glob("*"))  # nothing half-written


def test_torchvision_pretrained_file_and_tags(tmp_path):
    file = tmp_path / "r18.pth"
    torch.manual_seed(9)
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, file)
    model = create_model(Config(model=TV, pretrained_file=str(file)))
    loaded = model.backbone.layer1[0].conv1.weight
    torch.testing.assert_close(loaded, state["layer1.0.conv1.weight"])
    with pytest.raises(ValueError, match=r"no weights 'V9' for 'resnet18'.*\['IMAGENET1K_V1'\]"):
        Config(model=TV, pretrained_tag="V9").validate()
    with pytest.raises(ValueError, match=r"did you mean 'torchvision/resnet18'"):
        Config(model="torchvision/resnet81").validate()


class _Tiny(nn.Module):
    def __init__(self, pool: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten()) if pool else nn.Identity()
        self.loaded = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(x))


@pytest.fixture
def own_models():
    @register_model("_tiny")
    def tiny() -> nn.Module:
        return _Tiny()

    @register_model("_tiny_pretrained", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    def tiny_pretrained(pretrained: bool = False) -> nn.Module:
        net = _Tiny()
        net.loaded = pretrained  # where a factory would load its own weights
        return net

    register_model("_tiny_unpooled")(lambda: _Tiny(pool=False))
    yield
    for name in ("_tiny", "_tiny_pretrained", "_tiny_unpooled"):
        MODELS.unregister(name)


def test_a_registered_factory_is_a_backbone_under_any_head(own_models):
    for head, shape in (("single", (2, 18)), ("mask", (2, 3))):
        cfg = Config(model="_tiny", head=head)
        cfg.validate()
        model = create_model(cfg)
        assert model(torch.zeros(2, 3, 32, 24)).shape == shape
        assert model.head.in_features == 5  # measured by one forward pass
    assert normalization(Config(model="_tiny")).source == "competition"


def test_a_registered_pretrained_model_uses_the_normalisation_it_was_registered_with(own_models):
    cfg = Config(model="_tiny_pretrained", pretrained=True)
    model = create_model(cfg)
    assert model.backbone.loaded and model.weights is None
    norm = normalization(cfg)
    assert (norm.mean, norm.std, norm.source) == ((0.5,) * 3, (0.25,) * 3, "_tiny_pretrained")
    with pytest.raises(ValueError, match=r"registered without their mean and std") as err:
        normalization(Config(model="_tiny", pretrained=True))  # never silently the competition's
    assert_documented("model-normalisation-unknown", str(err.value))
    with pytest.raises(ValueError, match=r"takes no pretrained argument"):
        create_model(Config(model="_tiny", pretrained=True))
    with pytest.raises(ValueError, match=r"'pretrained_tag'.*register_model"):
        Config(model="_tiny_pretrained", pretrained_tag="in1k").validate()


def test_a_backbone_must_return_pooled_features(own_models):
    with pytest.raises(ValueError, match=r"returns \(1, 5, 62, 46\).*pooled features"):
        create_model(Config(model="_tiny_unpooled"))


def test_an_unknown_model_names_all_three_sources():
    with pytest.raises(
        ValueError, match=r"not a timm model.*torchvision/<name>.*register_model"
    ) as err:
        Config(model="no_such_net").validate()
    assert_documented("config-model", str(err.value))


# ---- kit.fit(cfg, model=..., loss=...): pieces of one's own without a register call -----------


def fit_own_backbone() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten())


class FitOwnLoss(nn.Module):
    """Half the cross-entropy: a loss of one's own, passed to kit.fit as a class."""

    def __init__(self) -> None:  # no keyword arguments: build_loss passes none
        super().__init__()

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 0.5 * nn.functional.cross_entropy(logits, target)


def test_fit_takes_a_model_and_a_loss_of_ones_own_and_the_run_names_and_records_them(tiny_cfg):
    import json

    from kit.losses import LOSSES
    from kit.runfolder import read_env
    from kit.train import fit

    try:
        run = fit(tiny_cfg.replace(epochs=1), model=fit_own_backbone, loss=FitOwnLoss)
        config = json.loads((run.run_dir / "config.json").read_text())
        assert (config["model"], config["loss"]) == ("fit_own_backbone", "FitOwnLoss")
        recorded = {(c["kind"], c["name"]) for c in read_env(run.run_dir)["code"]}
        assert {("model", "fit_own_backbone"), ("loss", "FitOwnLoss")} <= recorded
        assert isinstance(create_model(Config(model="fit_own_backbone")).backbone, nn.Sequential)
    finally:
        MODELS.unregister("fit_own_backbone")
        LOSSES.unregister("FitOwnLoss")


@pytest.mark.parametrize("piece", [nn.Linear(2, 2), lambda: nn.Linear(2, 2)])
def test_fit_refuses_a_model_no_process_could_build_again(tiny_cfg, piece):
    from kit.errors import ConfigError
    from kit.train import fit

    with pytest.raises(ConfigError, match=r"kit.fit's model= takes a named function or class"):
        fit(tiny_cfg, model=piece)
    assert not (Path(tiny_cfg.output_dir)).exists()  # refused before any run folder
