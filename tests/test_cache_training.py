"""The picture cache inside training: same pixels, right key, decoded once, off with --no-cache.

The cache itself (atomic builds, partial caches never used, locking) is tested in
test_cache.py; these tests cover what ``fit`` and ``kit.train.setup`` add on top.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import kit.data.layout as dataset_module  # where load_rgb opens pictures
import kit.data.pictures as pipeline  # prepare_file and the cache key's loader version
from kit.config import Config
from kit.data import read_eval
from kit.data.dataset import FlipChoice, ImageDataset, load_rgb
from kit.data.pictures import build_run_cache
from kit.data.sampling import SeededDataset
from kit.recipe import parse_args
from kit.splits import load_splits, run_paths
from kit.train import fit
from kit.train.setup import RunPictures
from kit.transforms import build_transforms, prepare


class CountingPIL:
    """Stands in for ``PIL.Image`` inside kit.data.layout: counts the pictures ``load_rgb``
    decodes (the layout's own checks open pictures too: those are not decodes for training)."""

    def __init__(self) -> None:
        self.opened: list[str] = []
        self._lock = threading.Lock()  # the cache decodes on several threads

    def open(self, path, *args, **kwargs):
        if sys._getframe(1).f_code is dataset_module.load_rgb.__code__:
            with self._lock:
                self.opened.append(str(path))
        return Image.open(path, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(Image, name)  # the rest of PIL.Image, for the layout's checks


@pytest.fixture
def cfg(tiny_cfg: Config, tmp_path: Path) -> Config:
    # one process (counted decodes), a private cache folder, augmentations that draw numbers
    return tiny_cfg.replace(workers=0, cache_dir=str(tmp_path / "cache"), preset="strong")


def _tensors(df: pd.DataFrame, transform, loader, seeds=None) -> list[torch.Tensor]:
    ds = ImageDataset(df, transform, labels=None, loader=loader)
    if seeds is None:
        return [ds[i][0] for i in range(len(ds))]
    seeded = SeededDataset(ds)
    return [seeded[(i, s)][0] for i, s in zip(range(len(ds)), seeds, strict=True)]


def test_cached_and_uncached_inputs_are_identical(cfg):
    data = load_splits(cfg)
    pictures = RunPictures.for_run(cfg, data, progress=False)
    assert pictures.prepared and len(pictures.cache) == len(run_paths(data))
    df = pd.concat([data.train.iloc[:40], data.val, data.eval]).reset_index(drop=True)
    files_train, files_eval = build_transforms(cfg)
    cached_train, cached_eval = build_transforms(cfg, prepared=True)
    plain = plain_eval = _tensors(df, files_eval, load_rgb)
    cached = _tensors(df, cached_eval, pictures.eval)
    assert all(torch.equal(a, b) for a, b in zip(plain, cached, strict=True))
    # random augmentations seeded alike see the same pixels, so they agree too
    seeds = list(range(1000, 1000 + len(df)))
    plain = _tensors(df, files_train, load_rgb, seeds)
    cached = _tensors(df, cached_train, pictures.train, seeds)
    assert all(torch.equal(a, b) for a, b in zip(plain, cached, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(plain, plain_eval, strict=True))


def test_the_key_follows_files_crop_size_and_loader_version(cfg, tiny_data, tmp_path, monkeypatch):
    sources = load_splits(cfg).train["path"].iloc[:6]
    (tmp_path / "pics").mkdir()
    paths = [
        shutil.copy(p, tmp_path / "pics" / f"{i}{Path(p).suffix}") for i, p in enumerate(sources)
    ]
    folder = tmp_path / "keys"
    base = build_run_cache(cfg, paths, folder, progress=False)
    assert build_run_cache(cfg, paths, folder, progress=False).key == base.key

    counter = CountingPIL()
    monkeypatch.setattr(dataset_module, "Image", counter)
    keys = {base.key}
    for changed in (cfg.replace(crop=(0.5, 0.5)), cfg.replace(image_size=(24, 16))):
        cache = build_run_cache(changed, paths, folder, progress=False)
        assert cache.key not in keys and cache.meta.size == changed.image_size
        keys.add(cache.key)
    monkeypatch.setattr(pipeline, "LOADER_VERSION", pipeline.LOADER_VERSION + 1)
    keys.add(build_run_cache(cfg, paths, folder, progress=False).key)
    monkeypatch.undo()
    assert len(keys) == 4 and len(counter.opened) == 3 * len(paths)  # each rebuilt in full

    # a picture replaced in place: a new key, and the new pixels
    target = paths[3]
    Image.fromarray(np.full((48, 36, 3), 7, np.uint8)).save(target, format="JPEG")
    os.utime(target, ns=(1, 1))
    fresh = build_run_cache(cfg, paths, folder, progress=False)
    assert fresh.key not in keys
    assert np.array_equal(fresh(target), pipeline.prepare_file(target, cfg))
    assert not np.array_equal(fresh(target), base(target))


def _decodes(cfg: Config, monkeypatch) -> tuple[int, object]:
    counter = CountingPIL()
    monkeypatch.setattr(dataset_module, "Image", counter)
    run = fit(cfg)
    monkeypatch.undo()
    return len(counter.opened), run


def test_fit_decodes_each_picture_once_with_the_cache_and_every_time_without(
    cfg, tiny_data, monkeypatch
):
    data = load_splits(cfg)
    unique = len(data.train) + len(data.val) + len(read_eval(tiny_data))
    decoded, cached_run = _decodes(cfg, monkeypatch)
    assert decoded == unique  # built once, on the first run
    assert _decodes(cfg, monkeypatch)[0] == 0  # reused by the next
    assert len(list(Path(cfg.cache_dir).glob("*.npy"))) == 1

    no_cache = cfg.replace(cache=False, cache_dir=cfg.cache_dir + "-unused")
    decoded, plain_run = _decodes(no_cache, monkeypatch)
    per_epoch = cfg.max_steps_per_epoch * cfg.batch_size + len(data.val)  # train + validate
    assert decoded == cfg.epochs * per_epoch + len(data.val) + len(data.eval)  # + the finish
    assert not Path(no_cache.cache_dir).exists()

    # the same pixels, so the same run
    for name in ("metrics.csv", "val_probs.csv", "test_probs.csv"):
        a, b = (pd.read_csv(r.run_dir / name) for r in (cached_run, plain_run))
        pd.testing.assert_frame_equal(
            a.drop(columns="seconds", errors="ignore"), b.drop(columns="seconds", errors="ignore")
        )


def test_flipped_copies_are_drawn_per_seed(cfg):
    data = load_splits(cfg.replace(cache_flips=True))
    pictures = RunPictures.for_run(cfg.replace(cache_flips=True), data, progress=False)
    assert isinstance(pictures.train, FlipChoice) and pictures.cache.has_flips
    path = data.train["path"].iloc[0]
    plain = load_rgb(path)
    original, mirror = prepare(plain, cfg), prepare(plain, cfg)[:, ::-1]
    drawn = []
    for seed in range(40):
        pictures.train.set_random_seed(seed)
        image = pictures.train(path)
        assert np.array_equal(image, original) or np.array_equal(image, mirror)
        drawn.append(np.array_equal(image, mirror))
        pictures.train.set_random_seed(seed)
        assert np.array_equal(pictures.train(path), image)  # a seed fixes the choice
    assert 5 < sum(drawn) < 35  # both kinds, about evenly
    assert np.array_equal(pictures.eval(path), original)  # evaluation never flips


def test_cache_switches_parse_on_the_command_line():
    assert parse_args(Config(), []).cache is True
    cfg = parse_args(Config(), ["--no-cache", "--cache-flips", "--cache-dir", "/tmp/c"])
    assert (cfg.cache, cfg.cache_flips, cfg.cache_dir) == (False, True, "/tmp/c")
    for f in dataclasses.fields(Config):  # every boolean switches off with --no-<name>
        if f.type in (bool, "bool"):
            flag = "--no-" + f.name.replace("_", "-")
            assert getattr(parse_args(Config().replace(**{f.name: True}), [flag]), f.name) is False


def test_a_smoke_run_and_a_smoke_kfold_decode_each_picture_once(cfg, monkeypatch):
    """Issue #16: a smoke run built the cache twice for the same pictures."""
    smoke = cfg.replace(smoke=True)
    unique = len(run_paths(load_splits(smoke.smoke_variant())))
    assert _decodes(smoke, monkeypatch)[0] == unique
    # every fold of a smoke K-fold reads the same pictures: the one cache serves them all
    assert _decodes(smoke.replace(folds="all", n_folds=2), monkeypatch)[0] == 0
    assert len(list(Path(cfg.cache_dir).glob("*.npy"))) == 1
