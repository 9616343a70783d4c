"""Pretrained weights the way timm users expect, tested without network: a Hugging Face cache
laid out in the test (``models--timm--<name>/snapshots/<rev>/model.safetensors``, refs/main),
offline mode, an unreachable hub, weight variants, and the normalisation that follows them."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from huggingface_hub import constants
from safetensors.torch import save_file

import kit.models
from kit.config import Config
from kit.models import PROBE_TIMEOUT_S, WeightsUnavailable, create_model, resolve_weights
from kit.transforms import MEAN, STD, build_transforms, normalization, prepare_key
from tests._triggers import assert_documented

ROOT = Path(__file__).resolve().parents[1]
MODEL, NAME, HUB_ID = "resnet10t", "resnet10t.c3_in1k", "timm/resnet10t.c3_in1k"
REVISION = "0123456789abcdef0123456789abcdef01234567"


def fill_hub_cache(cache: Path, seed: int = 3) -> tuple[Path, dict[str, torch.Tensor]]:
    """Lay out ``cache`` as huggingface_hub does, holding random resnet10t weights."""
    torch.manual_seed(seed)
    state = timm.create_model(NAME, pretrained=False).state_dict()
    repo = cache / f"models--{HUB_ID.replace('/', '--')}"
    snapshot = repo / "snapshots" / REVISION
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    save_file({k: v.contiguous() for k, v in state.items()}, snapshot / "model.safetensors")
    return snapshot / "model.safetensors", state


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    cache = tmp_path_factory.mktemp("hf") / "hub"
    file, state = fill_hub_cache(cache)
    return cache, file, state


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    # huggingface_hub reads HF_HUB_OFFLINE / HF_HUB_CACHE once, at import: a user sets them in
    # the shell before starting Python; in-process tests set what that reading produced.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return monkeypatch


def test_pretrained_loads_exactly_the_cached_tensors_offline(filled, offline):
    cache, file, state = filled
    offline.setattr(constants, "HF_HUB_CACHE", str(cache))
    model = create_model(Config(model=MODEL, pretrained=True))
    loaded = model.backbone.state_dict()
    assert loaded and set(loaded) <= set(state)
    for name, tensor in loaded.items():
        assert torch.equal(tensor, state[name]), name
    w = model.weights
    assert (w.source, w.name, w.hub_id, Path(w.file)) == ("cache", NAME, HUB_ID, file)
    assert w.sha256 == hashlib.sha256(file.read_bytes()).hexdigest()
    fresh = create_model(Config(model=MODEL))
    assert fresh.weights is None
    assert not torch.equal(fresh.backbone.state_dict()["conv1.0.weight"], state["conv1.0.weight"])


def test_offline_and_not_cached_fails_at_once_naming_both_remedies(tmp_path, offline):
    offline.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    start = time.monotonic()
    with pytest.raises(WeightsUnavailable) as err:
        create_model(Config(model=MODEL, pretrained=True))
    assert time.monotonic() - start < 5.0
    message = str(err.value)
    for part in (
        NAME,
        str(tmp_path / "empty"),
        "HF_HUB_OFFLINE=1",
        "--pretrained-file",
        "on a machine with internet",
        f"timm.create_model('{NAME}', pretrained=True)",
    ):
        assert part in message, part
    assert "no network" not in message
    assert_documented("pretrained-offline", message)


def test_an_unreachable_hub_fails_within_five_seconds_without_retries(tmp_path, monkeypatch):
    # five seconds: the one request's timeout, with room for the rest; the test waits out a
    # shorter timeout, which is how long the failure takes when nothing is retried
    assert PROBE_TIMEOUT_S <= 4.0
    timeout = 1.0
    monkeypatch.setattr(kit.models, "PROBE_TIMEOUT_S", timeout)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with socket.socket() as server:  # accepts connections, never answers: a silent network
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        start = time.monotonic()
        with pytest.raises(WeightsUnavailable, match="hub unreachable") as err:
            resolve_weights(Config(model=MODEL, pretrained=True))
        took = time.monotonic() - start
    assert timeout * 0.8 < took < timeout * 1.9, took  # one request timed out, none retried
    assert "--pretrained-file" in str(err.value)
    assert_documented("pretrained-hub-unreachable", str(err.value))


def test_a_missing_file_is_downloaded_into_the_cache_and_recorded_as_hub(
    filled, tmp_path, monkeypatch
):
    import huggingface_hub

    source_file = filled[1]
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    asked = []
    monkeypatch.setattr(
        huggingface_hub, "get_hf_file_metadata", lambda url, **kw: asked.append(url)
    )

    def download(repo_id, filename, **kw):  # what hf_hub_download leaves behind
        got = fill_hub_cache(Path(kw["cache_dir"]))[0]
        return str(got)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    w = resolve_weights(Config(model=MODEL, pretrained=True))
    assert w.source == "hub" and asked and asked[0].endswith("model.safetensors")
    assert w.sha256 == hashlib.sha256(source_file.read_bytes()).hexdigest()  # same seed
    assert resolve_weights(Config(model=MODEL, pretrained=True)).source == "cache"


def test_the_pretrained_tag_picks_the_weight_variant(filled, offline):
    offline.setattr(constants, "HF_HUB_CACHE", str(filled[0]))
    w = resolve_weights(Config(model=MODEL, pretrained=True, pretrained_tag="c3_in1k"))
    assert w.name == NAME and w.hub_id == HUB_ID
    with pytest.raises(ValueError, match=r"tags of 'resnet10t': \['c3_in1k'\]") as err:
        resolve_weights(Config(model=MODEL, pretrained=True, pretrained_tag="in22k"))
    assert_documented("pretrained-tag-unknown", str(err.value))


def test_a_local_file_wins_and_is_recorded_with_its_checksum(filled, tmp_path):
    file = filled[1]
    w = resolve_weights(Config(model=MODEL, pretrained_file=str(file)))
    assert (w.source, w.hub_id, Path(w.file)) == ("file", None, file.resolve())
    assert w.sha256 == hashlib.sha256(file.read_bytes()).hexdigest()
    assert resolve_weights(Config(model=MODEL)) is None


def test_normalisation_follows_the_weights():
    scratch, tuned = Config(model=MODEL), Config(model=MODEL, pretrained=True)
    assert normalization(scratch).mean == MEAN and normalization(scratch).std == STD
    pc = timm.get_pretrained_cfg(NAME)
    norm = normalization(tuned)
    assert (norm.mean, norm.std, norm.interpolation) == (pc.mean, pc.std, pc.interpolation)
    assert norm.source == MODEL
    image = np.full((40, 30, 3), 128, np.uint8)
    for cfg, n in ((scratch, normalization(scratch)), (tuned, norm)):
        out = build_transforms(cfg.replace(image_size=(16, 12)))[1](image=image)["image"]
        expected = (128 / 255 - np.array(n.mean)) / np.array(n.std)
        assert np.allclose(out[:, 0, 0].numpy(), expected, atol=1e-5)
    # the cache keys on the interpolation (it changes enlarged pixels); mean/std do not
    assert prepare_key(scratch)["interpolation"] == "bilinear"
    assert prepare_key(tuned)["interpolation"] == "bicubic"


@pytest.mark.slow
def test_a_fresh_process_trains_pretrained_offline_from_the_cache_and_records_it(filled, tmp_path):
    """What a team does on a GPU server without internet: the cache pre-filled, HF_HUB_OFFLINE
    set in the shell; the run folder's env.json says which weights were loaded."""
    cache, file, _ = filled
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        str(ROOT / "recipes" / "baseline.py"),
        "--smoke",
        "--pretrained",
        "--output-dir",
        str(tmp_path / "runs"),
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    record = json.loads((run_dir / "env.json").read_text())
    assert record["weights"] == {
        "source": "cache",
        "name": NAME,
        "hub_id": HUB_ID,
        "file": str(file),
        "sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
    }
    pc = timm.get_pretrained_cfg(NAME)
    assert record["normalization"]["mean"] == list(pc.mean)
    assert record["normalization"]["interpolation"] == pc.interpolation
    # the same command with an empty cache stops with the message, before any training
    env["HF_HUB_CACHE"] = str(tmp_path / "empty")
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "not in the Hugging Face cache" in proc.stderr and "--pretrained-file" in proc.stderr
    assert "epoch 1/" not in proc.stderr + proc.stdout
