"""fit(): the run folder contract, learning, determinism, resume, multi-head, failures."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score

import kit.splits as kit_splits
from kit.config import Config
from kit.data import read_eval, read_train
from kit.runfolder import EPOCH_COLUMNS as METRIC_COLUMNS
from kit.runfolder import create_run_dir
from kit.train import fit
from tests._runfolders import RUN_FILES
from tests._training import at_training_step, interrupted_in_epoch_2
from tests._triggers import assert_documented

PROBS = [f"p{k}" for k in range(18)]


def _metrics(run_dir) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv").drop(columns="seconds")


@pytest.fixture(scope="module")
def straight(tiny_base, tmp_path_factory):
    """An uninterrupted three-epoch run, shared by the contract, determinism and resume tests."""
    cfg = tiny_base.replace(
        output_dir=str(tmp_path_factory.mktemp("straight")),
        epochs=3,
        warmup_epochs=0.5,
        preset="strong",  # exercises the augmentation seeding
    )
    return cfg, fit(cfg)


def test_run_folder_holds_every_contract_file(straight, tiny_data):
    cfg, run = straight
    d = run.run_dir
    assert d.parent == Path(cfg.output_dir)
    assert d.name.endswith("_t") and len(d.name.split("_")[0]) == len("YYYYmmdd-HHMMSS")
    for name in RUN_FILES:
        assert (d / name).is_file(), name
    assert not list(d.glob("*.tmp")) and not list(d.glob(".*"))
    assert Config.from_dict(json.loads((d / "config.json").read_text())) == cfg
    status = json.loads((d / "status.json").read_text())
    assert status["status"] == "complete" and status["epoch"] == 3
    env = json.loads((d / "env.json").read_text())
    for key in ("git_commit", "git_dirty", "user", "host", "versions", "device", "argv"):
        assert key in env
    assert env["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert env["torch_threads"] == torch.get_num_threads() >= 1
    assert env["cpu"] and env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()

    metrics = pd.read_csv(d / "metrics.csv")
    assert tuple(metrics.columns) == METRIC_COLUMNS
    assert metrics["epoch"].tolist() == [1, 2, 3]

    val = pd.read_csv(d / "val_probs.csv", dtype={"person_id": str})
    assert list(val.columns) == ["image_id", "person_id", "label", "fold", *PROBS]
    np.testing.assert_allclose(val[PROBS].sum(axis=1), 1.0, atol=1e-5)
    assert (val["fold"] == -1).all()
    train = read_train(tiny_data)
    assert set(val["image_id"]) < set(train["image_id"])
    # every person of the validation side is wholly there (person-level split)
    val_people = set(val["person_id"].astype(str))
    assert len(val) == train["person_id"].astype(str).isin(val_people).sum()

    summary = json.loads((d / "summary.json").read_text())
    expected_f1 = f1_score(
        val["label"],
        val[PROBS].to_numpy().argmax(1),
        labels=range(18),
        average="macro",
        zero_division=0,
    )
    assert summary["val_macro_f1"] == pytest.approx(expected_f1)
    assert summary["val_macro_f1"] == pytest.approx(metrics["val_macro_f1"].max())
    assert summary["best_epoch"] == int(metrics["val_macro_f1"].idxmax()) + 1
    assert summary["n_val"] == len(val) and summary["epochs_run"] == 3
    assert np.asarray(summary["confusion"]).shape == (18, 18)
    assert run.best_score == summary["val_macro_f1"] and run.status == "complete"

    info = read_eval(tiny_data)
    sub = pd.read_csv(d / "submission.csv")
    test = pd.read_csv(d / "test_probs.csv")
    assert sub["ImageID"].tolist() == info["ImageID"].tolist()
    assert test["image_id"].tolist() == info["image_id"].tolist()
    np.testing.assert_array_equal(sub["ans"], test[PROBS].to_numpy().argmax(1))

    best = torch.load(d / "best.pt", weights_only=True)
    assert best["epoch"] == summary["best_epoch"] and best["config"]["model"] == "test_resnet"


def test_two_runs_of_one_config_give_identical_metrics(straight):
    cfg, first = straight
    second = fit(cfg)
    assert second.run_dir != first.run_dir
    pd.testing.assert_frame_equal(_metrics(first.run_dir), _metrics(second.run_dir))


def test_resume_after_an_interrupt_ends_like_an_uninterrupted_run(straight, tmp_path):
    cfg, reference = straight
    cfg = cfg.replace(output_dir=str(tmp_path))
    assert interrupted_in_epoch_2(cfg) == 130
    (run_dir,) = tmp_path.iterdir()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "interrupted" and status["epoch"] == 1
    assert len(pd.read_csv(run_dir / "metrics.csv")) == 1

    resumed = fit(cfg.replace(resume=str(run_dir)))
    assert resumed.run_dir == run_dir and list(tmp_path.iterdir()) == [run_dir]
    pd.testing.assert_frame_equal(_metrics(run_dir), _metrics(reference.run_dir))
    pd.testing.assert_frame_equal(
        pd.read_csv(run_dir / "val_probs.csv"), pd.read_csv(reference.run_dir / "val_probs.csv")
    )
    env = json.loads((run_dir / "env.json").read_text())
    assert len(env["resumed"]) == 1


def test_a_failure_is_recorded_in_status(tiny_cfg, monkeypatch, tmp_path):
    def broken():
        raise RuntimeError("disk on fire")

    at_training_step(monkeypatch, 1, broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        fit(tiny_cfg)
    (run_dir,) = (tmp_path / "runs").iterdir()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "failed" and "disk on fire" in status["error"]


def test_multi_head_trains_one_step_and_writes_18_way_probabilities(tiny_cfg):
    cfg = tiny_cfg.replace(
        head="multi",
        head_losses={"age": "focal"},
        loss_kwargs={"age": {"gamma": 2.0}},
        epochs=1,
        max_steps_per_epoch=1,
        sampler="balanced",
        age_thresholds=(30, 58),
        tta="hflip",
    )
    run = fit(cfg)
    val = pd.read_csv(run.run_dir / "val_probs.csv")
    np.testing.assert_allclose(val[PROBS].sum(axis=1), 1.0, atol=1e-5)
    assert run.status == "complete"


def test_run_folders_are_never_reused(tmp_path):
    first = create_run_dir(tmp_path, "same")
    second = create_run_dir(tmp_path, "same")
    third = create_run_dir(tmp_path, "same")
    assert len({first, second, third}) == 3
    if first.name.split("_")[0] == third.name.split("_")[0]:  # same second
        assert third.name.endswith("-3")


def _shuffled(load_splits, seed: int):
    """load_splits whose training labels are permuted across images (pictures unchanged)."""

    def load(cfg):
        splits = load_splits(cfg)
        order = np.random.default_rng(seed).permutation(len(splits.train))
        cols = ["label", "mask", "gender", "age", "age_group"]
        splits.train[cols] = splits.train[cols].to_numpy()[order]
        return splits

    return load


def _chance_f1(labels: np.ndarray, prior: np.ndarray, draws: int = 200) -> float:
    """Mean macro F1 of guessing from the training class prior (sklearn, independent of kit)."""
    rng = np.random.default_rng(0)
    scores = [
        f1_score(
            labels,
            rng.choice(18, len(labels), p=prior),
            labels=range(18),
            average="macro",
            zero_division=0,
        )
        for _ in range(draws)
    ]
    return float(np.mean(scores))


@pytest.mark.slow
def test_training_learns_and_shuffled_labels_do_not(tiny_cfg, monkeypatch):
    """Chance (guessing from the class prior) scores ~0.05 macro F1 here. The fixture's cues
    are learnable, so a real signal must lift a short training well clear of it (>= 3x chance
    and >= 0.12); the same training on permuted labels must not (< 0.10)."""
    cfg = tiny_cfg.replace(epochs=8, max_steps_per_epoch=None, lr=3e-3)
    start = time.monotonic()
    learned = fit(cfg)
    val = pd.read_csv(learned.run_dir / "val_probs.csv")
    counts = np.bincount(read_train(cfg.data_dir)["label"], minlength=18)
    chance = _chance_f1(val["label"].to_numpy(), counts / counts.sum())
    monkeypatch.setattr(kit_splits, "load_splits", _shuffled(kit_splits.load_splits, seed=1))
    shuffled = fit(cfg)
    print(
        f"chance {chance:.3f} learned {learned.best_score:.3f} shuffled {shuffled.best_score:.3f}"
        f" in {time.monotonic() - start:.1f}s"
    )
    assert chance < 0.08
    assert learned.best_score >= max(3 * chance, 0.12)
    assert shuffled.best_score < 0.10


# ---- learning-rate schedules ----------------------------------------------------------------
def _schedule(**changes):
    from kit.optim import build_scheduler

    cfg = Config(lr=1.0, epochs=4, warmup_epochs=1.0).replace(**changes)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=cfg.lr)
    scheduler = build_scheduler(
        opt,
        cfg.scheduler,
        lr=cfg.lr,
        epochs=cfg.epochs,
        steps_per_epoch=5,
        warmup_epochs=cfg.warmup_epochs,
        scheduler_kwargs=cfg.scheduler_kwargs,
    )
    return scheduler, opt


def _lrs(scheduler, opt, steps: int, start: int = 0) -> list[float]:
    """The learning rate of each optimizer update, as the training loop steps the scheduler."""
    out = []
    for update in range(start, start + steps):
        out.append(opt.param_groups[0]["lr"])
        scheduler.step_update(num_updates=update + 1)
    return out


def test_cosine_with_linear_warmup_matches_the_formula():
    import math

    schedule, opt = _schedule(scheduler="cosine")
    lrs = _lrs(schedule, opt, 20)
    warm, total = 5, 20
    for step, lr in enumerate(lrs):
        ramp = min(1.0, (step + 1) / (warm + 1))
        t = max(0.0, (step - warm) / (total - warm))
        assert lr == pytest.approx(ramp * 0.5 * (1 + math.cos(math.pi * t)))
    assert lrs[0] < lrs[4] < lrs[5] == pytest.approx(1.0)


def test_fractional_warmup_and_the_cosine_floor():
    schedule, opt = _schedule(warmup_epochs=0.4, scheduler_kwargs={"min_lr_ratio": 0.1})
    lrs = _lrs(schedule, opt, 25)
    assert lrs[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])  # 0.4 epoch of 5 updates: 2 updates
    assert lrs[20:] == pytest.approx([0.1] * 5)  # past the schedule's end: the floor


def test_step_schedule_decays_by_gamma_every_step_epochs():
    schedule, opt = _schedule(
        scheduler="step", warmup_epochs=0.0, scheduler_kwargs={"step_epochs": 2, "gamma": 0.5}
    )
    lrs = _lrs(schedule, opt, 20)
    assert lrs[:10] == [1.0] * 10 and lrs[10:] == [0.5] * 10


def test_plateau_drops_after_patience_and_the_state_round_trips():
    kwargs = {"patience": 1, "factor": 0.1}
    schedule, opt = _schedule(scheduler="plateau", warmup_epochs=0.0, scheduler_kwargs=kwargs)
    for epoch, score in enumerate((0.5, 0.4, 0.4), start=1):  # best, then 2 > patience 1
        _lrs(schedule, opt, 5, start=5 * (epoch - 1))
        schedule.step(epoch, score)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    assert _lrs(schedule, opt, 2, start=15) == pytest.approx([0.1, 0.1])  # updates keep it
    again, opt2 = _schedule(scheduler="plateau", warmup_epochs=0.0, scheduler_kwargs=kwargs)
    again.load_state_dict(schedule.state_dict())
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.1)
    again.step(4, 0.4)  # the counters came along: one more epoch without gain is not a drop
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.1)
    again.step(5, 0.4)
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.01)


def test_unknown_scheduler_kwargs_name_the_field_before_a_run_folder(tiny_cfg, tmp_path):
    cfg = tiny_cfg.replace(scheduler="step", scheduler_kwargs={"min_lr_ratio": 0.1})
    with pytest.raises(ValueError, match=r"'scheduler_kwargs' has \['min_lr_ratio'\]"):
        fit(cfg)
    assert not (tmp_path / "runs").exists()
    cfg = tiny_cfg.replace(scheduler="step", scheduler_kwargs={"patience": 2.0})
    with pytest.raises(ValueError, match=r"'scheduler_kwargs' has \['patience'\]") as err:
        fit(cfg)
    assert_documented("config-scheduler-kwargs", str(err.value))
    assert not (tmp_path / "runs").exists()


def test_no_weight_decay_for_biases_and_norm_weights():
    from kit.models import create_model
    from kit.optim import build_optimizer

    model = create_model(Config(model="test_resnet"))
    optimizer = build_optimizer(model, "adamw", lr=0.003, weight_decay=0.05)
    decay = {g["weight_decay"]: {id(p) for p in g["params"]} for g in optimizer.param_groups}
    assert set(decay) == {0.0, 0.05}
    for p in model.parameters():
        assert id(p) in decay[0.0 if p.ndim <= 1 else 0.05]


def test_balanced_sampler_draws_classes_evenly():
    from kit.data.sampling import SAMPLERS

    labels = np.array([0] * 90 + [1] * 9 + [2] * 1)
    sampler = SAMPLERS["balanced"](labels, torch.Generator().manual_seed(0))
    drawn = labels[np.fromiter(sampler, int)]
    counts = np.bincount(drawn, minlength=3)
    assert len(drawn) == len(labels)
    assert counts.min() > 15  # plain sampling would give class 2 about 1 draw in 100


def test_pretrained_offline_and_not_cached_fails_before_any_work(tiny_cfg, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    start = time.monotonic()
    with pytest.raises(ValueError, match="not in the Hugging Face cache.*--pretrained-file"):
        fit(tiny_cfg.replace(pretrained=True))
    assert time.monotonic() - start < 2.0
    assert not (tmp_path / "runs").exists()  # no run folder for a config that cannot run


def test_running_f1_labels_of_both_output_kinds():
    import torch

    from kit.labels import decode
    from kit.train.loop import batch_labels

    labels = torch.tensor([0, 5, 17, 9])
    logits = torch.full((4, 18), -9.0)
    logits[torch.arange(4), torch.tensor([0, 5, 16, 9])] = 9.0
    true, pred = batch_labels(logits, labels)
    assert true.tolist() == [0, 5, 17, 9] and pred.tolist() == [0, 5, 16, 9]
    m, g, a = decode(labels)
    heads = {
        "mask": torch.nn.functional.one_hot(m, 3).float() * 9,
        "gender": torch.nn.functional.one_hot(g, 2).float() * 9,
        "age": torch.nn.functional.one_hot(a, 3).float() * 9,
    }
    true, pred = batch_labels(heads, {"mask": m, "gender": g, "age": a})
    assert true.tolist() == pred.tolist() == [0, 5, 17, 9]


def test_resume_refuses_changed_experiment_fields_only(tiny_cfg, tmp_path):
    """Fields --resume may change (roles run / machine / output, and experiment fields whose
    metadata says ``resume``) pass the check; any other change is refused, naming the fields,
    before last.pt is even read."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(tiny_cfg.to_dict()))
    (run / "last.pt").write_bytes(b"placeholder")  # a resume that passes stops at reading it
    may_change = {"workers": 1, "eval_batch_size": 7, "name": "other", "quiet": False}
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        fit(tiny_cfg.replace(resume=str(run), **may_change))
    changed = r"with changed model: 'test_resnet' -> 'resnet10t'; lr: 0\.003 -> 0\.5: "
    with pytest.raises(ValueError, match=changed) as info:
        fit(tiny_cfg.replace(resume=str(run), lr=0.5, model="resnet10t", workers=1))
    assert "workers" not in str(info.value) and f"--resume {run} alone" in str(info.value)
    assert sorted(p.name for p in run.iterdir()) == ["config.json", "last.pt"]
    with pytest.raises(ValueError, match=r"with changed lr: 0\.003 -> 0\.5: ") as info:
        fit(tiny_cfg.replace(resume=str(run), lr=0.5))  # the page's example
    assert_documented("resume-changed", str(info.value))
