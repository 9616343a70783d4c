"""Augmentation of training batches on the model's device (``--device-aug``, kit.batch):
drawn per picture, applied before normalisation, training only, deterministic and resumable."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

import kit
import kit.train.loop as loop
from kit.batch import DEVICE_AUGS, create_device_aug, to_model_input
from kit.bench.__main__ import main as bench_main
from kit.models import create_model
from kit.splits import load_splits
from kit.train import fit
from kit.train.forward import predict_frame
from kit.transforms import normalization
from tests._training import interrupted_in_epoch_2
from tests._triggers import assert_documented

CPU = torch.device("cpu")


def _model_input(images, cfg, augment=None):
    """``images`` as kit's training loop hands them to ``cfg``'s model."""
    norm = normalization(cfg)
    return to_model_input(
        images, CPU, mean=norm.mean, std=norm.std, channels_last=cfg.channels_last, augment=augment
    )


def _metrics(run) -> pd.DataFrame:
    return pd.read_csv(run.run_dir / "metrics.csv").drop(columns="seconds")


def _pictures(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` uint8 (H, W, 3) pictures, as kit's loaders give them."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 32, 24, 3), dtype=torch.uint8, generator=generator)


def test_flips_are_drawn_picture_by_picture(tiny_cfg):
    cfg = tiny_cfg.replace(device_aug="flip")
    images = _pictures(1).expand(64, -1, -1, -1).contiguous()  # one picture, 64 times
    plain = _model_input(images, cfg)
    torch.manual_seed(0)
    out = _model_input(images, cfg, create_device_aug(cfg))
    same = [torch.allclose(o, p, atol=1e-5) for o, p in zip(out, plain, strict=True)]
    mirrored = [torch.allclose(o, p.flip(-1), atol=1e-5) for o, p in zip(out, plain, strict=True)]
    assert all(s != m for s, m in zip(same, mirrored, strict=True))  # each one or the other
    assert 10 < sum(mirrored) < 54  # p=0.5 per picture, not one draw for the batch


@pytest.mark.parametrize("name", ["flip", "strong"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_an_augmented_batch_keeps_shape_dtype_device_layout_and_range(
    tiny_cfg, name, channels_last
):
    cfg = tiny_cfg.replace(device_aug=name, channels_last=channels_last)
    images = _pictures(32)
    augment = create_device_aug(cfg)
    torch.manual_seed(1)
    pixels = augment(images.permute(0, 3, 1, 2).float() / 255)
    assert pixels.shape == (32, 3, 32, 24) and pixels.min() >= 0 and pixels.max() <= 1
    torch.manual_seed(1)
    out = _model_input(images, cfg, augment)
    plain = _model_input(images, cfg)
    assert out.shape == plain.shape and out.dtype == torch.float32 and out.device == CPU
    layout = torch.channels_last if channels_last else torch.contiguous_format
    assert out.is_contiguous(memory_format=layout)
    norm = normalization(cfg)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (norm.mean, norm.std))
    # the same draws: the augmented pixels, then normalised (so inside [(0 - m) / s, (1 - m) / s])
    torch.testing.assert_close(out, (pixels - mean) / std, atol=1e-4, rtol=0)
    assert not torch.allclose(out, plain)  # something changed


def test_none_is_the_plain_path_and_a_float_batch_is_refused(tiny_cfg):
    assert create_device_aug(tiny_cfg) is None  # the default
    images = _pictures(4)
    assert torch.equal(_model_input(images, tiny_cfg, None), _model_input(images, tiny_cfg))
    with pytest.raises(ValueError, match="needs uint8 batches") as err:
        _model_input(torch.zeros(2, 3, 8, 8), tiny_cfg, lambda x: x)
    assert_documented("device-aug-float-batch", str(err.value))


def test_presets_are_registered_and_public():
    assert {"none", "flip", "strong"} <= set(DEVICE_AUGS.names())
    assert kit.create_device_aug is create_device_aug and kit.DEVICE_AUGS is DEVICE_AUGS


def test_validation_and_prediction_never_augment(tiny_cfg):
    def boom(cfg):
        raise AssertionError("an evaluation batch was augmented")

    DEVICE_AUGS.register("_boom", boom)
    try:
        df = load_splits(tiny_cfg).val.iloc[:10]
        model = create_model(tiny_cfg)
        plain = predict_frame(model, df, tiny_cfg, tta="hflip")
        for name in ("strong", "_boom"):
            seen = predict_frame(model, df, tiny_cfg.replace(device_aug=name), tta="hflip")
            assert (seen == plain).all()
    finally:
        DEVICE_AUGS.unregister("_boom")


@pytest.fixture(scope="module")
def strong(tiny_base, tmp_path_factory):
    """A tiny training with ``--device-aug strong`` (and cutmix after it, on the device too)."""
    out = str(tmp_path_factory.mktemp("strong"))
    cfg = tiny_base.replace(output_dir=out, device_aug="strong", mix="cutmix")
    return cfg, fit(cfg)


def test_training_with_device_aug_is_deterministic_and_seeded(strong):
    cfg, first = strong
    again = fit(cfg)
    pd.testing.assert_frame_equal(_metrics(first), _metrics(again))
    other = fit(cfg.replace(seed=cfg.seed + 1))
    assert not _metrics(first)["train_loss"].equals(_metrics(other)["train_loss"])
    plain = fit(cfg.replace(device_aug="none"))  # the augmentation did change training
    assert not _metrics(first)["train_loss"].equals(_metrics(plain)["train_loss"])


def test_training_with_device_aug_does_not_depend_on_loader_workers(strong):
    cfg, first = strong
    with_worker = fit(cfg.replace(workers=1))
    pd.testing.assert_frame_equal(_metrics(first), _metrics(with_worker))


def test_an_interrupted_run_with_device_aug_resumes_to_the_same_metrics(strong, tmp_path):
    cfg, reference = strong
    cfg = cfg.replace(output_dir=str(tmp_path))
    interrupted_in_epoch_2(cfg)
    (run_dir,) = tmp_path.iterdir()
    assert len(pd.read_csv(run_dir / "metrics.csv")) == 1
    resumed = fit(cfg.replace(resume=str(run_dir)))
    pd.testing.assert_frame_equal(_metrics(resumed), _metrics(reference))


def test_a_misspelt_preset_is_one_error_line_with_a_suggestion(tiny_cfg, capsys):
    with pytest.raises(SystemExit) as exit_info:
        kit.main(tiny_cfg, argv=["--device-aug", "strnog"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert "device_aug" in err[0] and "did you mean 'strong'" in err[0]


@pytest.mark.slow  # kit.bench's phases, each a timed training; device-aug training stays fast
def test_the_benchmark_trains_kits_phases_with_the_device_augmentation(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # the fixture is built under ./data
    built, real = [], loop.create_device_aug
    monkeypatch.setattr(
        loop, "create_device_aug", lambda cfg: built.append(cfg.device_aug) or real(cfg)
    )
    argv = [
        "--people",
        "2",
        "--fixture-size",
        "64",
        "48",
        "--image-size",
        "32",
        "24",
        "--batch-size",
        "4",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--repeats",
        "1",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--data-workers",
        "0",
    ]
    assert bench_main([*argv, "--device-aug", "strong"]) == 0
    assert "device_aug strong" in capsys.readouterr().out
    # (a), (b), (c) train augmented; the plain baseline's normalised batches are not
    assert built == ["strong", "strong", "strong", "none"]
    assert bench_main([*argv, "--device-aug", "strnog"]) == 2
    assert "did you mean 'strong'" in capsys.readouterr().err
