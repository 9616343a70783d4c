"""Optimizers and fine-tuning controls: any timm optimizer name, layer-wise decay, a backbone
learning-rate multiplier and head-only epochs first (``freeze_epochs``)."""

from __future__ import annotations

import itertools
import json
from types import SimpleNamespace

import pytest
import torch
from timm.optim import create_optimizer_v2

import kit.train.setup as setup
from kit.config import Config, check_registries
from kit.models import create_model
from kit.optim import build_optimizer, build_scheduler, freeze_backbone
from kit.recipe import main as recipe_main
from kit.train import fit
from tests._triggers import assert_documented


@pytest.mark.parametrize(("name", "kind"), [("lion", "Lion"), ("lamb", "Lamb"), ("sgd", "SGD")])
def test_any_timm_optimizer_name_builds_timms_optimizer(name, kind):
    model = create_model(Config(model="test_resnet"))
    optimizer = build_optimizer(model, name, lr=0.01, weight_decay=1e-4)
    assert type(optimizer).__name__ == kind
    assert {g["lr"] for g in optimizer.param_groups} == {0.01}


def test_a_misspelt_optimizer_gets_did_you_mean_from_timms_list(capsys):
    with pytest.raises(ValueError, match=r"'lambb'.*did you mean 'lamb'") as err:
        check_registries(Config(optimizer="lambb"))
    assert_documented("optimizer-unknown", str(err.value))
    with pytest.raises(SystemExit) as exit_info:
        recipe_main(Config(), argv=["--optimizer", "adamww", "--smoke"])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2
    assert err[-1].startswith("error: config field 'optimizer' is 'adamww' (did you mean 'adamw'")


def test_plain_adamw_groups_the_model_as_runs_before_the_new_fields_did():
    """Old run folders resume: their optimizer state fits only the same parameter groups."""
    model = create_model(Config(model="test_resnet"))
    old = create_optimizer_v2(model, "adamw", lr=0.003, weight_decay=1e-4)
    new = build_optimizer(model, "adamw", lr=0.003, weight_decay=1e-4)  # Config's defaults
    shape = [[p.shape for p in g["params"]] for g in old.param_groups]
    assert [[p.shape for p in g["params"]] for g in new.param_groups] == shape
    new.load_state_dict(old.state_dict())  # what a resume does with last.pt


def test_layer_decay_and_backbone_scale_leave_the_head_at_full_rate():
    cfg = Config(model="test_resnet", lr=0.01, layer_decay=0.5, backbone_lr_scale=0.1)
    model = create_model(cfg)
    optimizer = build_optimizer(
        model,
        cfg.optimizer,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        layer_decay=cfg.layer_decay,
        backbone_lr_scale=cfg.backbone_lr_scale,
    )
    scheduler = build_scheduler(optimizer, "none", lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=10)
    scheduler.step_update(1)
    lr_of = {id(p): g["lr"] for g in optimizer.param_groups for p in g["params"]}
    head = {lr_of[id(p)] for p in model.head.parameters()}
    backbone = sorted({lr_of[id(p)] for p in model.backbone.parameters()}, reverse=True)
    assert list(head) == [pytest.approx(0.01)]
    assert backbone[0] == pytest.approx(0.001)  # the top block: backbone_lr_scale * lr
    assert len(backbone) >= 3  # test_resnet's stem and blocks, each half the one above
    assert all(lo == pytest.approx(hi * 0.5) for hi, lo in itertools.pairwise(backbone))


def test_a_frozen_backbone_is_left_alone_by_the_optimizer():
    model = create_model(Config(model="test_resnet"))
    optimizer = build_optimizer(model, "lion", lr=0.003, weight_decay=1e-4)
    before = [p.detach().clone() for p in model.backbone.parameters()]
    head_before = [p.detach().clone() for p in model.head.parameters()]
    freeze_backbone(model, frozen=True)
    model(torch.randn(2, 3, 32, 24)).sum().backward()
    optimizer.step()
    backbone, head = model.backbone.parameters(), model.head.parameters()
    assert all(torch.equal(a, b) for a, b in zip(before, backbone, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(head_before, head, strict=True))
    freeze_backbone(model, frozen=False)
    assert all(p.requires_grad for p in model.parameters())


def test_freeze_epochs_trains_the_head_alone_first_then_everything(tiny_cfg, monkeypatch):
    seen = []
    real = setup.freeze_backbone

    def spy(model, frozen):
        seen.append((frozen, [p.detach().clone() for p in model.backbone.parameters()]))
        real(model, frozen)

    monkeypatch.setattr(setup, "freeze_backbone", spy)
    cfg = tiny_cfg.replace(epochs=3, freeze_epochs=1, optimizer="lamb", layer_decay=0.8)
    fit(cfg)
    assert [frozen for frozen, _ in seen] == [True, False, False]
    unchanged = [torch.equal(a, b) for a, b in zip(seen[0][1], seen[1][1], strict=True)]
    moved = [torch.equal(a, b) for a, b in zip(seen[1][1], seen[2][1], strict=True)]
    assert all(unchanged)  # epoch 1 trained the head only
    assert not all(moved)  # epoch 2 trained the backbone too


def test_without_freeze_epochs_the_layers_a_user_froze_stay_frozen():
    model = create_model(Config(model="test_resnet"))
    stem = next(model.backbone.parameters())
    stem.requires_grad_(False)  # the user's own choice, in their model
    tf, parts = SimpleNamespace(set_random_seed=lambda seed: None), SimpleNamespace(model=model)
    trainer = setup.Trainer(None, torch.Generator(), tf, None, parts, None)
    trainer.start_epoch(Config(epochs=3), 2)
    assert not stem.requires_grad
    assert all(p.requires_grad for p in model.head.parameters())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"freeze_epochs": 2, "epochs": 2}, "'freeze_epochs' is 2 with epochs 2"),
        ({"layer_decay": 1.5}, "'layer_decay' is 1.5; expected a factor in (0, 1]"),
        ({"backbone_lr_scale": 0.0}, "'backbone_lr_scale' is 0.0; expected a number > 0"),
    ],
)
def test_fine_tuning_fields_are_checked_with_one_line(changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        Config(**changes).validate()
    if "freeze_epochs" in changes:
        assert_documented("freeze-epochs-too-many", str(err.value))


def test_smoke_keeps_a_head_only_epoch_inside_its_two_epochs():
    small = Config(epochs=20, freeze_epochs=3).smoke_variant()
    assert (small.epochs, small.freeze_epochs) == (2, 1)
    small.validate()


@pytest.mark.slow  # two gloo processes
def test_head_only_epochs_train_under_torchrun(tiny_data, tmp_path):
    """DDP waits for a gradient of every parameter unless told some get none (the frozen
    backbone of the head-only epochs)."""
    from tests.test_distributed import _torchrun

    out = tmp_path / "runs"
    args = ["--data-dir", str(tiny_data), "--output-dir", str(out), "--freeze-epochs", "1"]
    _torchrun([*args, "--optimizer", "lamb"], tmp_path)
    (run_dir,) = out.iterdir()
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "complete"
