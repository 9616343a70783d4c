"""Transforms: presets, the fractional centre crop, and train / eval agreement."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch

from kit.config import Config
from kit.transforms import (
    MEAN,
    PRESETS,
    STD,
    FractionCenterCrop,
    build_transforms,
    create_transforms,
    prepare,
)
from kit.tta import TTA


def _picture(h: int = 128, w: int = 96, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_presets_registry():
    assert {"base", "strong"} <= set(PRESETS)


@pytest.mark.parametrize(("h", "w"), [(512, 384), (128, 96), (64, 48)])
def test_crop_is_the_same_fraction_at_any_picture_size(h, w):
    out = FractionCenterCrop((0.625, 2 / 3))(image=_picture(h, w))["image"]
    assert out.shape[:2] == (round(h * 0.625), round(w * 2 / 3))


def test_crop_takes_the_centre():
    img = _picture(512, 384)
    out = FractionCenterCrop((0.625, 2 / 3))(image=img)["image"]
    assert out.shape[:2] == (320, 256)  # the teams' 320x256 crop of the 512x384 photo
    np.testing.assert_array_equal(out, img[96:416, 64:320])


@pytest.mark.parametrize("preset", ["base", "strong"])
def test_eval_and_train_outputs_agree_in_shape_and_normalisation(preset):
    cfg = Config(preset=preset, image_size=(40, 32), seed=3)
    train_tf, eval_tf = build_transforms(cfg)
    img = _picture()
    ev, tr = eval_tf(image=img)["image"], train_tf(image=img)["image"]
    assert isinstance(ev, torch.Tensor) and ev.shape == tr.shape == (3, 40, 32)
    assert ev.dtype == tr.dtype == torch.float32
    # eval = prepared picture normalised by the competition statistics (independent reference)
    ref = prepare(img, cfg).astype(np.float32) / 255.0
    ref = (ref - np.array(MEAN, np.float32)) / np.array(STD, np.float32)
    np.testing.assert_allclose(ev.numpy(), ref.transpose(2, 0, 1), atol=1e-5)
    if preset == "base":  # no augmentation: the training transform equals the eval transform
        assert torch.equal(tr, ev)


def test_strong_preset_augments_and_is_seeded():
    cfg = Config(preset="strong", image_size=(40, 32))
    img = _picture()
    a, _ = build_transforms(cfg)
    b, _ = build_transforms(cfg)
    outs_a = [a(image=img)["image"] for _ in range(6)]
    outs_b = [b(image=img)["image"] for _ in range(6)]
    assert all(torch.equal(x, y) for x, y in zip(outs_a, outs_b, strict=True))
    assert any(not torch.equal(outs_a[0], x) for x in outs_a[1:])


def test_custom_augmentation_is_wrapped_by_the_config_geometry():
    cfg = Config(image_size=(40, 32))
    train_tf, eval_tf = build_transforms(cfg, augment=A.Compose([A.HorizontalFlip(p=1.0)]))
    img = _picture()
    flipped = train_tf(image=img)["image"]
    assert flipped.shape == (3, 40, 32)
    assert torch.equal(flipped, torch.flip(eval_tf(image=img)["image"], dims=[2]))


def test_custom_augmentation_may_not_resize_or_normalise():
    cfg = Config()
    with pytest.raises(ValueError, match="Normalize"):
        build_transforms(cfg, augment=A.Compose([A.Normalize()]))
    with pytest.raises(ValueError, match="Resize"):
        build_transforms(cfg, augment=[A.Resize(10, 10)])


def test_create_transforms_takes_the_settings_a_config_unpacks_to():
    """The stand-alone pipeline of explicit settings is the Config's, step for step."""
    cfg = Config(image_size=(40, 32), crop=(0.8, 0.9), seed=5)
    flip = [A.HorizontalFlip(p=0.5)]
    settings = {"image_size": (40, 32), "crop": (0.8, 0.9), "seed": 5, "augment": flip}
    img = _picture()
    for tensor in (True, False):
        for prepared in (True, False):
            picture = _picture(40, 32) if prepared else img
            ours = create_transforms(**settings, prepared=prepared, tensor=tensor)
            theirs = build_transforms(cfg, augment=flip, prepared=prepared, tensor=tensor)
            for a, b in zip(ours, theirs, strict=True):
                outs = [(a(image=picture)["image"], b(image=picture)["image"]) for _ in range(4)]
                assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in outs)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    _, eval_tf = create_transforms(image_size=(40, 32), mean=mean, std=std)
    whole = Config(image_size=(40, 32), crop=(1.0, 1.0))  # create_transforms crops nothing
    ref = (prepare(img, whole).astype(np.float32) / 255.0 - 0.5) / 0.25
    np.testing.assert_allclose(
        eval_tf(image=img)["image"].numpy(), ref.transpose(2, 0, 1), atol=1e-5
    )
    with pytest.raises(ValueError, match="Normalize"):
        create_transforms(image_size=(40, 32), augment=[A.Normalize()])
    with pytest.raises(ValueError, match="needs each picture's face box"):
        create_transforms(image_size=(40, 32), crop_mode="face")


def test_prepared_transforms_skip_crop_and_resize():
    cfg = Config(image_size=(40, 32))
    _, eval_tf = build_transforms(cfg)
    _, prepared_tf = build_transforms(cfg, prepared=True)
    img = _picture()
    assert torch.equal(eval_tf(image=img)["image"], prepared_tf(image=prepare(img, cfg))["image"])


def test_tta_views_are_a_registry_shared_with_inference():
    import kit.inference

    assert kit.inference.TTA is TTA and {"none", "hflip"} <= set(TTA)
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    (plain,) = TTA.get("none")(x)
    same, mirror = TTA.get("hflip")(x)
    assert torch.equal(plain, x) and torch.equal(same, x)
    assert torch.equal(mirror, torch.flip(x, dims=[3]))  # left-right: the width axis
    with pytest.raises(ValueError, match=r"unknown tta 'vflip' \(did you mean 'hflip'\?\)"):
        TTA.get("vflip")


def test_unknown_preset_names_the_close_one():
    with pytest.raises(ValueError, match=r"unknown preset 'strnog' \(did you mean 'strong'\?\)"):
        build_transforms(Config(preset="strnog"))
