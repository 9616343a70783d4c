"""The training techniques of docs/techniques.md: batch mixing with soft targets, soft targets
in every loss, logit adjustment, boundary ages out of training, EMA of the weights, refit and
the test-time views."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import kit.runfolder as rundir
from kit.config import Config
from kit.inference import load_run_model, predict
from kit.labels import NUM_CLASSES, TASKS, decode, heads_from_joint
from kit.losses import LOSSES, build_loss, build_multihead_loss, class_priors
from kit.mixing import MIX_PAIRS, MIXES, Mixer, build_mixer, mix_active
from kit.splits import drop_ages, load_splits
from kit.train import fit
from kit.train.checkpoint import load
from kit.train.distributed import SINGLE
from kit.train.forward import predict_frame
from kit.train.setup import RunPictures, build_trainer
from kit.tta import TTA, shift, tta_views, zoom
from tests._triggers import assert_documented

# ---- mixing --------------------------------------------------------------------------------
MIXED = [m for m in MIXES.names() if m != "none"]


def _batch(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, 8, 6, generator=g)
    classes = torch.tensor([0, 0, 5, 5, 5, 17, 17, 3, 3, 9, 9, 9, 1, 1, 12, 12][:n])
    return images, classes


def _mixer(mix: str = "cutmix", **kw) -> Mixer:
    mixer = build_mixer(mix, **kw)
    assert mixer is not None
    return mixer


@pytest.mark.parametrize("pairs", MIX_PAIRS.names())
@pytest.mark.parametrize("mix", MIXED)
def test_mixed_soft_targets_sum_to_one_per_head(mix: str, pairs: str):
    np.random.seed(0)
    images, classes = _batch()
    mixer = _mixer(mix=mix, pairs=pairs)
    out, soft = mixer(images.clone(), classes)
    assert out.shape == images.shape and soft.shape == (16, NUM_CLASSES)
    assert torch.allclose(soft.sum(1), torch.ones(16)) and (soft >= 0).all()
    assert not torch.equal(out, images), "nothing was mixed"
    # three heads: each head's target is a distribution over that head's classes
    heads = dict(zip(TASKS, decode(classes), strict=True))
    np.random.seed(0)
    out_h, soft_h = mixer(images.clone(), heads)
    assert torch.equal(out_h, out)  # the same draw mixes the same pictures
    # each head's target mixes that head's ids with the picture's lam: the 18-way marginal
    for h, size, marginal in zip(TASKS, (3, 2, 3), heads_from_joint(soft), strict=True):
        assert soft_h[h].shape == (16, size)
        assert torch.allclose(soft_h[h].sum(1), torch.ones(16))
        assert torch.allclose(soft_h[h], marginal)


@pytest.mark.parametrize("mix", MIXED)
def test_same_class_partners_share_the_class(mix: str):
    np.random.seed(1)
    images, classes = _batch()
    partner = MIX_PAIRS.get("same_class")(classes.numpy())
    assert (classes.numpy()[partner] == classes.numpy()).all()
    assert (partner != np.arange(16)).any()  # pairs are drawn, not the identity
    out, soft = _mixer(mix=mix, pairs="same_class")(images.clone(), classes)
    # the mixed target is still the picture's own class: no mask pasted onto "not wear"
    assert torch.equal(soft, nn.functional.one_hot(classes, NUM_CLASSES).float())
    assert not torch.equal(out, images)


@pytest.mark.parametrize(("mix", "axis"), [("vhalves", 3), ("hhalves", 2)])
def test_half_pictures_keep_one_half_and_take_the_partners_other(mix: str, axis: int):
    np.random.seed(2)
    images, classes = _batch()
    classes = torch.arange(16)  # every class once: random partners differ in class
    out, soft = _mixer(mix=mix, lam=(0.3, 0.34))(images.clone(), classes)
    lam = float(soft[0, 0]) if soft[0, 0] < 1 else float(soft[1, 1])
    size = images.shape[axis]
    cut = round(lam * size)
    assert 0.3 - 1 / size <= lam <= 0.34 + 1 / size and abs(lam - cut / size) < 1e-6
    assert torch.equal(out.narrow(axis, 0, cut), images.narrow(axis, 0, cut))
    others = soft - lam * torch.eye(16, NUM_CLASSES)  # what the partner's class holds
    partner = others.argmax(1)
    assert torch.allclose(others.max(1).values, torch.full((16,), 1 - lam))
    rest = images[partner].narrow(axis, cut, size - cut)
    assert torch.equal(out.narrow(axis, cut, size - cut), rest)


def test_mixing_is_seeded_by_numpy_and_respects_its_probability():
    images, classes = _batch()
    runs = []
    for _ in range(2):
        np.random.seed(7)
        runs.append(_mixer(mix="mixup_cutmix")(images.clone(), classes))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
    out, soft = _mixer(mix="vhalves", prob=0.0)(images.clone(), classes)
    assert torch.equal(out, images)
    assert torch.equal(soft, nn.functional.one_hot(classes, NUM_CLASSES).float())


def test_odd_batches_mix_too_and_mixing_switches_off_for_the_last_epochs():
    images, classes = _batch(15)
    np.random.seed(0)
    out, soft = _mixer(mix="cutmix")(images.clone(), classes)  # timm needs even: kit's path
    assert torch.allclose(soft.sum(1), torch.ones(15)) and not torch.equal(out, images)
    active = [mix_active(e, mix="cutmix", epochs=5, off_epochs=2) for e in range(1, 6)]
    assert active == [True, True, True, False, False]
    default = Config()  # mixes nothing
    assert build_mixer(default.mix) is None
    assert not mix_active(1, mix=default.mix, epochs=default.epochs)


@pytest.mark.slow  # four smoke trainings
def test_unmixed_soft_targets_train_like_class_ids(tiny_cfg):
    """The soft-target path itself costs nothing: a mixer that mixes no batch (mix_prob 0)
    trains to the baseline's losses, for timm's path (random pairs) and kit's (same class)."""
    base = pd.read_csv(fit(tiny_cfg).run_dir / rundir.METRICS)
    for change in ({"mix": "mixup"}, {"mix": "vhalves", "mix_pairs": "same_class"}):
        run = fit(tiny_cfg.replace(mix_prob=0.0, **change))
        soft = pd.read_csv(run.run_dir / rundir.METRICS)
        cols = ["train_loss", "val_loss", "val_macro_f1"]
        np.testing.assert_allclose(soft[cols], base[cols], atol=1e-5, err_msg=str(change))
    mixed = pd.read_csv(fit(tiny_cfg.replace(mix="mixup")).run_dir / rundir.METRICS)
    assert not np.allclose(mixed["train_loss"], base["train_loss"], atol=1e-3)  # it can fail


# ---- soft targets through every loss -------------------------------------------------------
LABELS = np.arange(200) % NUM_CLASSES
SPECS = [*LOSSES.names(), "0.5*focal+0.5*f1", "logit_adjusted+cross_entropy"]


@pytest.mark.parametrize("spec", SPECS)
def test_every_loss_takes_soft_targets_and_one_hot_ones_equal_class_ids(spec: str):
    torch.manual_seed(0)
    logits = torch.randn(12, NUM_CLASSES, requires_grad=True)
    ids = torch.tensor([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 17])
    loss = build_loss(spec, num_classes=NUM_CLASSES, labels=LABELS)
    onehot = nn.functional.one_hot(ids, NUM_CLASSES).float()
    assert torch.allclose(loss(logits, onehot), loss(logits, ids), atol=1e-6)
    soft = 0.7 * onehot + 0.3 * onehot.roll(1, 0)
    value = loss(logits, soft)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()
    assert not torch.allclose(value, loss(logits, ids))


def test_three_head_losses_take_soft_targets_per_head():
    torch.manual_seed(0)
    outputs = {h: torch.randn(6, k) for h, k in (("mask", 3), ("gender", 2), ("age", 3))}
    ids = {h: torch.randint(0, o.shape[1], (6,)) for h, o in outputs.items()}
    loss = build_multihead_loss("logit_adjusted", labels=LABELS)
    onehot = {h: nn.functional.one_hot(ids[h], o.shape[1]).float() for h, o in outputs.items()}
    assert torch.allclose(loss(outputs, onehot), loss(outputs, ids), atol=1e-6)


def test_logit_adjustment_adds_the_log_priors_and_needs_the_labels():
    labels = np.array([0] * 90 + [1] * 9 + [2])
    priors = class_priors(labels, 3)
    assert torch.allclose(priors, torch.tensor([91.0, 10.0, 2.0]) / 103)
    logits, target = torch.randn(5, 3), torch.tensor([0, 1, 2, 2, 1])
    adjusted = build_loss("logit_adjusted", num_classes=3, labels=labels, tau=0.5)
    expected = nn.functional.cross_entropy(logits + 0.5 * priors.log(), target)
    assert torch.allclose(adjusted(logits, target), expected)
    balanced = build_loss("balanced_softmax", num_classes=3, labels=labels)
    ce = nn.functional.cross_entropy(logits + priors.log(), target)
    assert torch.allclose(balanced(logits, target), ce)
    plain = build_loss("logit_adjusted", num_classes=3, labels=labels, tau=0.0)
    assert torch.allclose(plain(logits, target), nn.functional.cross_entropy(logits, target))
    with pytest.raises(ValueError, match="needs the training labels") as err:
        build_loss("logit_adjusted", num_classes=3)
    assert_documented("logit-adjusted-no-labels", str(err.value))


# ---- boundary ages -------------------------------------------------------------------------
def test_dropped_ages_are_absent_from_training_rows_and_present_in_validation(tiny_cfg):
    cfg = tiny_cfg.replace(drop_ages="57-59,20-22")
    splits = load_splits(cfg)
    assert splits.val["age"].isin([20, 59]).any(), "the fixture's val people changed"
    trainer = build_trainer(
        cfg,
        splits.train,
        RunPictures.for_run(cfg, splits, SINGLE, progress=False),
        None,
        device=torch.device("cpu"),
    )
    trained = pd.DataFrame({"path": trainer.loader.dataset.dataset.paths})
    ages = trained.merge(splits.train, on="path")["age"]
    assert len(ages) == len(trained) and ages.between(57, 59).sum() == 0
    assert ages.between(20, 22).sum() == 0 and len(trained) < len(splits.train)
    # the split does not move, and validation scores everyone
    assert splits.val["image_id"].tolist() == load_splits(tiny_cfg).val["image_id"].tolist()
    run = fit(cfg.replace(epochs=1))
    val = pd.read_csv(run.run_dir / rundir.VAL_PROBS)
    assert sorted(val["image_id"]) == sorted(splits.val["image_id"])
    assert drop_ages(splits.train, None) is splits.train


def test_dropping_every_training_age_is_refused_naming_the_ages_there_are():
    people = pd.DataFrame({"age": [27, 28, 29], "path": ["a", "b", "c"]})
    assert drop_ages(people, "28-28")["age"].tolist() == [27, 29]
    with pytest.raises(ValueError, match="drop_ages '20-30' leaves no training rows") as err:
        drop_ages(people, "20-30")
    assert_documented("drop-ages-all", str(err.value))


# ---- EMA -------------------------------------------------------------------------------------
def test_ema_weights_differ_from_the_raw_ones_and_are_what_the_submission_used(tiny_cfg):
    run = fit(tiny_cfg.replace(ema=True, ema_decay=0.9, epochs=2))
    best, last = load(run.run_dir / rundir.BEST), load(run.run_dir / rundir.LAST)
    raw, ema = last["model"], last["ema"]
    assert set(ema) == set(raw)
    floats = [k for k, v in raw.items() if v.is_floating_point()]
    assert any(not torch.equal(raw[k], ema[k]) for k in floats)
    if int(best["epoch"]) == 2:  # the best epoch's weights are the average, not the model
        assert all(torch.equal(best["model"][k], ema[k]) for k in floats)
    assert any(not torch.equal(best["model"][k], raw[k]) for k in floats)
    # predictions from best.pt (the average) are the run's own files, submission included
    splits = load_splits(tiny_cfg)
    val = pd.read_csv(run.run_dir / rundir.VAL_PROBS)
    np.testing.assert_allclose(val[rundir.PROB_COLUMNS], predict(run.run_dir, splits.val), 1e-6)
    test = predict(run.run_dir, splits.eval)
    sub = pd.read_csv(run.run_dir / rundir.SUBMISSION)
    assert (sub["ans"].to_numpy() == test.argmax(1)).all()
    assert run.summary["submission_weights"] == rundir.BEST


# ---- refit -----------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["continue", "all"])
def test_refit_trains_on_everyone_and_the_submission_says_so(tiny_cfg, mode: str):
    run = fit(tiny_cfg.replace(refit=mode, refit_epochs=1, ema=mode == "continue"))
    assert run.summary["submission_weights"] == rundir.REFIT
    refit, best = load(run.run_dir / rundir.REFIT), load(run.run_dir / rundir.BEST)
    assert int(refit["epoch"]) == (1 if mode == "continue" else int(best["epoch"]))
    splits = load_splits(tiny_cfg)
    model, cfg = load_run_model(run.run_dir)
    model.load_state_dict(refit["model"])
    test = pd.read_csv(run.run_dir / rundir.TEST_PROBS)[rundir.PROB_COLUMNS].to_numpy()
    np.testing.assert_allclose(test, predict_frame(model, splits.eval, cfg), atol=1e-6)
    # validation (scores, val_probs.csv) is the validated best.pt's, never the refit's
    val = pd.read_csv(run.run_dir / rundir.VAL_PROBS)[rundir.PROB_COLUMNS].to_numpy()
    np.testing.assert_allclose(val, predict(run.run_dir, splits.val), atol=1e-6)
    assert not np.allclose(test, predict(run.run_dir, splits.eval), atol=1e-4)


# ---- test-time views ------------------------------------------------------------------------
class _MirrorInvariant(nn.Module):
    """Logits from the column-symmetrised picture: a mirror image gives the same output."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * 32 * 24, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(((x + x.flip(3)) / 2).flatten(1))


def test_hflip_of_a_mirror_invariant_model_gives_identical_probabilities(tiny_cfg):
    torch.manual_seed(0)
    model, df = _MirrorInvariant(), load_splits(tiny_cfg).val
    plain = predict_frame(model, df, tiny_cfg)
    np.testing.assert_allclose(predict_frame(model, df, tiny_cfg, tta="hflip"), plain, atol=1e-6)
    # ... and a model that sees the side changes: the view is really the mirror image
    nn.init.normal_(model.linear.weight)
    other = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 24, NUM_CLASSES))
    assert not np.allclose(
        predict_frame(other, df, tiny_cfg, tta="hflip"), predict_frame(other, df, tiny_cfg)
    )


def test_views_keep_the_shape_and_move_the_picture_as_named():
    x = torch.arange(2 * 3 * 8 * 6, dtype=torch.float32).reshape(2, 3, 8, 6)
    for spec in [*TTA.names(), "hflip+shift", "hflip+scale"]:
        views = tta_views(spec)(x)
        assert all(v.shape == x.shape for v in views), spec
        assert torch.equal(views[0], x)
    assert len(tta_views("hflip+shift")(x)) == 10 and len(tta_views("scale")(x)) == 3
    moved = shift(x, 1, 2)  # down 1, right 2: pixel (r, c) comes from (r - 1, c - 2)
    assert torch.equal(moved[..., 1:, 2:], x[..., :-1, :-2])
    assert torch.equal(moved[..., 0, 2:], x[..., 0, :-2])  # the edge row is repeated
    flat = torch.full((1, 3, 8, 6), 0.5)
    assert torch.allclose(zoom(flat, 1.1), flat) and torch.allclose(zoom(flat, 1 / 1.1), flat)
    centre = zoom(x, 1.1)[..., 3:5, 2:4]  # zooming in keeps the centre where it was
    assert (centre - x[..., 3:5, 2:4]).abs().max() < 6


def test_unknown_views_are_refused_by_name():
    with pytest.raises(ValueError, match="'tta' is 'hflip\\+hflp': unknown view 'hflp'"):
        Config(tta="hflip+hflp").validate()
    with pytest.raises(ValueError, match="unknown view 'flip'") as err:  # the page's example
        Config(tta="hflip+flip").validate()
    assert_documented("tta-unknown-view", str(err.value))
    with pytest.raises(ValueError, match="unknown tta view 'flip'"):
        predict(nn.Linear(2, 2), pd.DataFrame({"path": []}), Config(), tta="flip")


@pytest.mark.parametrize("mix", MIXED)
def test_a_per_task_head_mixes_its_own_values(mix: str):
    np.random.seed(3)
    images, _ = _batch()
    ages = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    out, soft = _mixer(mix=mix, head="age")(images.clone(), ages)
    assert soft.shape == (16, 3) and torch.allclose(soft.sum(1), torch.ones(16))
    assert not torch.equal(out, images)
    loss = build_loss("cross_entropy", num_classes=3)(torch.randn(16, 3), soft)
    assert torch.isfinite(loss)
