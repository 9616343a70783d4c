"""Autocast precision: ``--amp-dtype`` picks bfloat16 or float16, only float16 scales the loss,
bfloat16 trains on the CPU too, and the run folder records what autocast computed in."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from kit.config import Config, saved_config
from kit.device import Amp, pick_amp
from kit.optim import build_parts
from kit.recipe import parse_args
from kit.runfolder import check_unchanged, read_config, read_env, read_metrics
from kit.train import fit
from kit.train.loop import train_one_epoch
from tests._triggers import assert_documented

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize(
    ("amp", "dtype", "device", "expected"),
    [
        (True, "float16", CUDA, torch.float16),
        (True, "bfloat16", CUDA, torch.bfloat16),
        (True, "bfloat16", CPU, torch.bfloat16),
        (True, "float16", CPU, None),  # float16 autocast is CUDA's: the CPU stays in float32
        (True, "auto", CPU, None),  # the CPU default is unchanged: float32
        (False, "bfloat16", CUDA, None),  # --no-amp wins over the dtype
        (False, "float16", CUDA, None),
    ],
)
def test_the_dtype_each_setting_gives_on_each_device(amp, dtype, device, expected):
    assert pick_amp(Config(amp=amp, amp_dtype=dtype), device).dtype == expected


def test_only_float16_takes_the_gradient_scaler_path():
    fp16, bf16 = pick_amp(Config(amp_dtype="float16"), CUDA), pick_amp(Config(), CPU)
    assert fp16.scaled and fp16.name == "float16"
    assert not pick_amp(Config(amp_dtype="bfloat16"), CUDA).scaled
    assert not bf16.scaled and bf16.name == "float32"
    # the scaler itself (on the CPU, where torch builds one without a GPU)
    assert Amp("cpu", torch.float16).scaler().is_enabled()
    assert not Amp("cpu", torch.bfloat16).scaler().is_enabled()
    assert not Amp("cpu", None).scaler().is_enabled()


def test_auto_on_a_gpu_is_bfloat16_where_supported_else_float16(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert pick_amp(Config(), CUDA).dtype == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert pick_amp(Config(), CUDA).scaled


def test_a_bad_dtype_is_refused_with_the_valid_names():
    with pytest.raises(
        ValueError, match=r"'amp_dtype' is 'fp16'; valid: \['auto', 'bfloat16'"
    ) as err:
        Config(amp_dtype="fp16").validate()
    assert_documented("config-amp-dtype", str(err.value))


def test_a_bfloat16_step_on_the_cpu_computes_in_bfloat16_without_a_scaler():
    cfg = Config(amp_dtype="bfloat16", epochs=1, warmup_epochs=0.0, quiet=True)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 6, 18))
    seen: list[torch.dtype] = []
    model.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    before = model[1].weight.detach().clone()
    batches = [(torch.randn(4, 3, 8, 6), torch.randint(0, 18, (4,))) for _ in range(2)]
    parts = build_parts(cfg, model, len(batches), CPU)
    loss, _ = train_one_epoch(parts, batches, nn.CrossEntropyLoss(), cfg, epoch=1)
    assert seen == [torch.bfloat16, torch.bfloat16]  # autocast ran the forward pass
    assert not parts.scaler.is_enabled()
    assert torch.isfinite(torch.tensor(loss))
    assert not torch.equal(model[1].weight, before)  # the step updated the float32 weights
    assert model[1].weight.dtype == torch.float32


def test_a_bfloat16_run_trains_and_records_its_dtype(tiny_cfg):
    run = fit(tiny_cfg.replace(amp_dtype="bfloat16", epochs=1))
    assert read_env(run.run_dir)["amp_dtype"] == "bfloat16"
    assert len(read_metrics(run.run_dir)) == 1
    plain = fit(tiny_cfg.replace(epochs=1, name="plain"))  # auto on the CPU: float32
    assert read_env(plain.run_dir)["amp_dtype"] == "float32"


def _saved_before_amp_dtype(cfg: Config, folder) -> None:
    """A run folder's config.json as kit wrote it before the amp_dtype field existed."""
    old = cfg.to_dict()
    del old["amp_dtype"]
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(old))


def test_a_run_saved_before_amp_dtype_is_read_and_resumed_as_float16(tiny_cfg, tmp_path):
    """Runs saved before the field autocast in float16 on CUDA: resuming one must not switch
    it to auto's bfloat16 half-way, and the ledger must not show today's default for it."""
    folder = tmp_path / "old"
    _saved_before_amp_dtype(tiny_cfg, folder)
    assert read_config(folder)["amp_dtype"] == "float16"
    assert parse_args(Config(), ["--resume", str(folder)]).amp_dtype == "float16"
    check_unchanged(tiny_cfg.replace(amp_dtype="float16"), folder)  # the same run: accepted
    with pytest.raises(ValueError, match="amp_dtype: 'float16' -> 'auto'"):
        check_unchanged(tiny_cfg, folder)
    # a field the file has is its own, and no file stays no config
    assert saved_config({"amp_dtype": "auto"}) == {"amp_dtype": "auto"}
    assert saved_config({}) == {} and read_config(tmp_path / "none") == {}
