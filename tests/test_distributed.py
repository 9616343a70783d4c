"""Several processes: torchrun training end to end, shards, gathering, and batches that do not
depend on the number of DataLoader workers or training processes."""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score
from torch.utils.data import DataLoader, DistributedSampler

from kit.config import Config
from kit.data import sampling
from kit.data.dataset import ImageDataset
from kit.data.sampling import SeededSampler, ShardSampler, train_loader
from kit.inference import load_run_model, predict
from kit.splits import load_splits
from kit.train import fit
from kit.train.distributed import SINGLE, DistContext, from_env, gather_rows, shard_rows
from kit.train.setup import Trainer
from kit.transforms import build_transforms
from tests._training import interrupted_in_epoch_2

ROOT = Path(__file__).resolve().parents[1]
PROBS = [f"p{k}" for k in range(18)]


def _torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``recipes/baseline.py --smoke ARGS`` on two gloo processes; fails the test if it does."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    proc = subprocess.run(
        [*launcher, "--nproc_per_node=2", str(ROOT / "recipes" / "baseline.py"), "--smoke", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_torchrun_trains_on_two_processes_and_scores_every_validation_image(tiny_data, tmp_path):
    out = tmp_path / "runs"
    args = ["--data-dir", str(tiny_data), "--output-dir", str(out), "--val-ratio", "0.25"]
    proc = _torchrun(args, tmp_path)
    (run_dir,) = out.iterdir()  # one folder: rank 1 used rank 0's
    assert proc.stdout.count("done: best epoch") == 1  # rank 0 alone reports
    assert proc.stdout.count("submission:") == 1  # fit names the submission once, on rank 0

    single = Config(data_dir=str(tiny_data), val_ratio=0.25, smoke=True).smoke_variant()
    val = load_splits(single).val
    assert len(val) % 2 == 1  # an odd count: one rank's share was padded
    probs = pd.read_csv(run_dir / "val_probs.csv", dtype={"person_id": str})
    assert probs["image_id"].tolist() == val["image_id"].tolist()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["n_val"] == len(val) and summary["status"] == "complete"
    assert json.loads((run_dir / "env.json").read_text())["processes"] == 2
    # every row holds the probabilities of its own image: the gathered shares are in order
    expected = predict(run_dir, val, Config(device="cpu", workers=0))
    np.testing.assert_allclose(probs[PROBS].to_numpy(), expected, atol=1e-5)
    truth, guess = val["label"].to_numpy(), expected.argmax(1)
    f1 = f1_score(truth, guess, labels=range(18), average="macro", zero_division=0)
    assert summary["val_macro_f1"] == pytest.approx(f1)


@pytest.mark.slow
def test_torchrun_k_fold_writes_one_parent_with_every_fold(tiny_data, tmp_path):
    out = tmp_path / "runs"
    args = ["--data-dir", str(tiny_data), "--output-dir", str(out), "--folds", "all"]
    proc = _torchrun([*args, "--n-folds", "2", "--epochs", "1"], tmp_path)
    (parent,) = out.iterdir()  # one parent: rank 1 trained into rank 0's
    assert parent.name.endswith("_baseline_kfold")
    assert proc.stdout.count("K-fold done") == 1
    folds = sorted(d for d in parent.iterdir() if d.is_dir())
    assert [json.loads((d / "config.json").read_text())["fold"] for d in folds] == [0, 1]
    for d in folds:  # one complete run per fold, trained by both processes
        assert json.loads((d / "status.json").read_text())["status"] == "complete"
        assert json.loads((d / "env.json").read_text())["processes"] == 2
    assert json.loads((parent / "status.json").read_text())["status"] == "complete"
    assert json.loads((parent / "env.json").read_text())["processes"] == 2
    # out of fold: every training image of the smoke run once, predicted by its fold's model
    smoke = Config(data_dir=str(tiny_data), n_folds=2, fold=0, smoke=True).smoke_variant()
    data = load_splits(smoke)
    oof = pd.read_csv(parent / "val_probs.csv", dtype={"image_id": str, "person_id": str})
    expected = sorted([*data.train["image_id"], *data.val["image_id"]])
    assert sorted(oof["image_id"]) == expected
    per_fold = pd.concat(
        [pd.read_csv(d / "val_probs.csv", dtype={"image_id": str, "person_id": str}) for d in folds]
    )
    merged = oof.merge(per_fold, on="image_id", suffixes=("", "_fold"))
    assert len(merged) == len(oof)
    np.testing.assert_allclose(merged[PROBS].to_numpy(), merged[[f"{p}_fold" for p in PROBS]])
    assert (parent / "submission.csv").is_file()


def test_the_environment_names_the_process():
    assert from_env({}) == SINGLE and SINGLE.is_main and not SINGLE.enabled
    ctx = from_env({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main, ctx.enabled) == (
        3,
        4,
        1,
        False,
        True,
    )
    with pytest.raises(ValueError, match="RANK=4"):
        from_env({"WORLD_SIZE": "4", "RANK": "4"})
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        from_env({"WORLD_SIZE": "two"})


@pytest.mark.parametrize("n, world", [(7, 2), (10, 3), (2, 4), (1, 1)])
def test_shards_deal_rows_like_distributed_sampler_and_gather_back(n, world):
    table = np.arange(n * 3, dtype=float).reshape(n, 3)
    shares = [shard_rows(n, DistContext(r, world)) for r in range(world)]
    for r, rows in enumerate(shares):
        assert rows.tolist() == list(DistributedSampler(range(n), world, r, shuffle=False))
    assert {int(i) for rows in shares for i in rows} == set(range(n))
    assert len({len(rows) for rows in shares}) == 1
    for rows in shares:  # each rank's part lands in its own rows
        part = gather_rows(table[rows], rows, n, SINGLE)
        np.testing.assert_array_equal(part[rows], table[rows])


def _epoch(loader: DataLoader, generator: torch.Generator, seed: int) -> list[torch.Tensor]:
    generator.manual_seed(seed)
    return [images for images, _ in loader]


def test_batches_do_not_depend_on_the_number_of_workers(tiny_cfg):
    cfg = tiny_cfg.replace(preset="strong", batch_size=8)
    data = load_splits(cfg)
    train_tf, _ = build_transforms(cfg)
    dataset = ImageDataset(data.train.iloc[:24], train_tf, "label")
    epochs = {}
    for workers in (0, 2):
        generator = torch.Generator()
        loader = train_loader(dataset, cfg.replace(workers=workers), generator)
        epochs[workers] = [_epoch(loader, generator, s) for s in (11, 12)]
    for a, b in zip(epochs[0], epochs[2], strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not torch.equal(epochs[0][0][0], epochs[0][1][0])  # epochs differ from each other


@pytest.mark.parametrize("world", [2, 3])
def test_process_shares_split_one_epoch_with_the_same_seeds(world):
    def draws(rank: int | None) -> list[tuple[int, int]]:
        generator = torch.Generator().manual_seed(5)
        sampler = SeededSampler(None, 10, generator)
        return list(sampler if rank is None else ShardSampler(sampler, rank, world))

    whole = draws(None)
    assert sorted(i for i, _ in whole) == list(range(10))
    shares = [draws(r) for r in range(world)]
    assert len({len(s) for s in shares}) == 1
    padded = whole + whole[: len(shares[0]) * world - len(whole)]
    for r, share in enumerate(shares):
        assert share == padded[r::world]  # each (picture, augmentation seed) as in one process


@pytest.mark.parametrize("cores, expected", [(1, 0), (2, 0), (3, 2), (4, 3), (32, 31)])
def test_auto_workers_follow_the_cores(cores, expected, monkeypatch):
    monkeypatch.setattr(sampling, "usable_cores", lambda: cores)
    assert sampling.resolve_workers("auto") == expected
    assert sampling.resolve_workers(5) == 5


@pytest.mark.parametrize("cores, processes, expected", [(16, 1, 15), (16, 4, 3), (16, 8, 0)])
def test_auto_workers_split_the_cores_between_training_processes(
    cores, processes, expected, monkeypatch
):
    monkeypatch.setattr(sampling, "usable_cores", lambda: cores)
    assert sampling.resolve_workers("auto", processes) == expected


def test_worker_loaders_persist_and_pin_memory_only_on_cuda(tiny_cfg):
    data = load_splits(tiny_cfg)
    dataset = ImageDataset(data.train, build_transforms(tiny_cfg)[0], "label")
    loader = train_loader(dataset, tiny_cfg.replace(workers=2), torch.Generator())
    assert loader.num_workers == 2 and loader.persistent_workers
    assert loader.pin_memory == torch.cuda.is_available()
    assert not train_loader(dataset, tiny_cfg.replace(workers=0), torch.Generator()).num_workers


@pytest.mark.parametrize("how", ["complete", "refit", "interrupted"])
def test_a_run_ends_its_loader_workers_however_it_ends(tiny_cfg, how):
    """Persistent workers end with the training, not when the garbage collector reaches the
    loader: until then they hold memory, and the collection waits up to 5 s for each."""
    cfg = tiny_cfg.replace(workers=1, epochs=1, max_steps_per_epoch=1)
    before = set(multiprocessing.active_children())
    gc.disable()  # what a collection would end must be ended by the run itself
    try:
        if how == "interrupted":  # mid-epoch, batches in flight
            interrupted_in_epoch_2(cfg.replace(epochs=2, max_steps_per_epoch=3))
        else:
            fit(cfg.replace(refit="continue" if how == "refit" else "none"))
        assert set(multiprocessing.active_children()) - before == set()
    finally:
        gc.enable()


def test_compile_and_channels_last_wire_through_fit(tiny_cfg, monkeypatch):
    compiled, layouts = [], []

    def fake_compile(module):  # a real compile takes minutes on a CPU; the wiring is the point
        compiled.append(module)
        inner = module.model  # channels_last wraps the model to convert its input
        inner.register_forward_pre_hook(
            lambda _, args: layouts.append(args[0].is_contiguous(memory_format=torch.channels_last))
        )
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    run = fit(tiny_cfg.replace(compile=True, channels_last=True, epochs=1, max_steps_per_epoch=2))
    assert len(compiled) == 1
    assert len(layouts) >= 2 and all(layouts)  # 2 training steps, then validation, all NHWC
    model, _ = load_run_model(run.run_dir)  # plain weight names, whatever wrapped the model
    assert not any(k.startswith(("model.", "_orig_mod.", "module.")) for k in model.state_dict())


class _SeededTransform:
    def set_random_seed(self, seed: int) -> None:
        self.seed = seed


def test_each_process_draws_its_own_mixing_and_augmentation_but_shuffles_alike(tiny_cfg):
    """torch's and numpy's generators (batch mixing, --device-aug, dropout) get a seed of
    their own per torchrun process; the loader's shuffle and the per-picture augmentation seeds
    stay the run's, which the processes' shares depend on. Rank 0 keeps a single process's
    seeds, so one process trains as before."""

    def draws(rank: int) -> tuple[list[float], list[float], list[int], int]:
        t = Trainer(None, torch.Generator(), _SeededTransform(), None, None, None, rank)
        t.start_epoch(tiny_cfg, 3)
        shuffle = torch.randperm(50, generator=t.generator).tolist()
        return torch.rand(3).tolist(), np.random.rand(3).tolist(), shuffle, t.train_tf.seed

    single = draws(0)
    assert draws(0) == single  # seeded by (seed, epoch) alone
    ranks = [draws(r) for r in (1, 2)]
    for other in ranks:
        assert other[0] != single[0] and other[1] != single[1]  # own torch / numpy draws
        assert other[2:] == single[2:]  # the same shuffle and picture seeds
    assert ranks[0][:2] != ranks[1][:2]
    seed = sampling.epoch_seed(tiny_cfg.seed, 3)
    torch.manual_seed(seed)
    assert single[0] == torch.rand(3).tolist()
