"""Config: defaults, dict/file round trips, validation errors, and the command line."""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from typing import Literal, get_args, get_origin, get_type_hints

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import kit.train  # noqa: F401  (fills every registry the config fields name)
from kit.config import Config, check_registries
from kit.errors import ConfigError
from kit.recipe import parse_args
from kit.registry import REGISTRIES, UnknownName
from kit.tta import TTA
from tests._triggers import assert_documented


def test_defaults_validate_and_cover_every_field_in_to_dict():
    cfg = Config().validate()
    d = cfg.to_dict()
    assert list(d) == [f.name for f in dataclasses.fields(Config)]
    assert d["image_size"] == list(cfg.image_size)  # plain JSON values
    json.dumps(d)


def test_mutable_defaults_are_not_shared():
    a, b = Config(), Config()
    a.head_losses["age"] = "focal"
    assert "age" not in b.head_losses


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
def test_save_load_round_trip(tmp_path, suffix):
    cfg = Config(
        model="resnet10t",
        image_size=(96, 72),
        crop=(0.5, 0.75),
        fold=2,
        head="multi",
        head_losses={"age": "focal"},
        head_weights={"age": 2.0},
        loss_kwargs={"gamma": 2.0},
        fixes=["builtin", "my_fixes.csv"],
        workers="auto",
    )
    path = cfg.save(tmp_path / f"cfg{suffix}")
    loaded = Config.load(path)
    assert loaded == cfg
    assert isinstance(loaded.image_size, tuple) and isinstance(loaded.crop, tuple)
    raw = json.loads(path.read_text()) if suffix == ".json" else yaml.safe_load(path.read_text())
    assert raw["image_size"] == [96, 72]


def test_load_keeps_defaults_for_missing_keys_and_coerces_ints_to_floats(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 1\nimage_size: [40, 32]\n")
    cfg = Config.load(path)
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.image_size == (40, 32) and cfg.epochs == Config().epochs


def test_unknown_key_names_it_and_suggests_close_matches():
    with pytest.raises(ValueError, match=r"unknown config key 'learning_rat'") as err:
        Config.from_dict({"learning_rat": 0.1})
    with pytest.raises(ValueError, match="did you mean.*batch_size") as typo:
        Config.from_dict({"batch_sise": 4})
    assert_documented("config-unknown-key", str(typo.value))
    assert "valid keys" in str(err.value)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("epochs", "3", "int"),
        ("epochs", 2.5, "int"),
        ("image_size", [96], r"tuple\[int, int\]"),
        ("image_size", ["a", "b"], r"tuple\[int, int\]"),
        ("amp", "yes", "bool"),
        ("head_weights", {"age": "x"}, r"dict\[str, float\]"),
        ("lr", True, "float"),
    ],
)
def test_wrong_types_name_field_value_and_expected_type(key, value, expected):
    with pytest.raises(ValueError, match=rf"'{key}'.*{expected}"):
        Config.from_dict({key: value})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": "resnet_nonexistent"}, "timm.list_models"),
        ({"loss": "focall"}, "unknown loss 'focall'"),
        ({"preset": "medium"}, r"valid: \['base', 'strong'\]"),
        ({"optimizer": "adamx"}, "config field 'optimizer' is 'adamx'.*timm.optim.list_optimizers"),
        ({"scheduler": "linear"}, "config field 'scheduler' is 'linear'.*valid: "),
        ({"head": "triple"}, "valid: "),
        ({"sampler": "oversample"}, "config field 'sampler' is 'oversample'.*valid: "),
        ({"tta": "vflip"}, "valid: "),
        ({"val_ratio": 1.5}, "val_ratio"),
        ({"fold": 5, "n_folds": 5}, "fold"),
        ({"crop": (0.0, 0.5)}, "crop"),
        ({"age_thresholds": (60, 30)}, "age_thresholds"),
        ({"workers": "many"}, "workers"),
        ({"head_losses": {"hair": "focal"}}, "head_losses"),
        ({"pretrained_file": "/no/such/weights.pth"}, "/no/such/weights.pth"),
        ({"pretrained_tag": "nope"}, "tags of .resnet10t.: \\[.c3_in1k.\\]"),
        ({"crop_mode": "faces"}, "did you mean .face."),
        ({"face_margin": -1.0}, "face_margin"),
        ({"device": "tpu:x"}, "device"),
        ({"folds": "7"}, "config field 'folds' is '7': there is no fold 7 with n_folds = 5"),
    ],
)
def test_validate_rejects_bad_values_with_the_valid_choices(changes, message):
    # a closed choice (a Literal field such as refit) is refused by replace already
    with pytest.raises(ValueError, match=message) as err:
        Config().replace(**changes).validate()
    seen = str(err.value)  # the page's examples:
    if changes == {"loss": "focall"}:
        assert_documented("config-loss", seen)
    if changes == {"preset": "medium"}:
        assert_documented("config-choice", seen)
    if changes == {"val_ratio": 1.5}:
        assert_documented("config-out-of-range", seen)
    if changes == {"fold": 5, "n_folds": 5}:
        assert_documented("config-fold", seen)
    if changes == {"head_losses": {"hair": "focal"}}:
        assert_documented("config-head-losses", seen)
    if changes == {"device": "tpu:x"}:
        assert_documented("config-device-name", seen)
    if changes == {"folds": "7"}:
        assert_documented("folds-no-such-fold", seen)


def test_a_cuda_device_without_a_gpu_is_refused_pointing_to_auto(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="'cuda' but torch sees no CUDA GPU; use auto") as err:
        Config(device="cuda").validate()
    assert_documented("config-device-no-gpu", str(err.value))
    Config(device="cpu").validate()


def test_a_missing_config_file_or_another_suffix_is_refused_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="config file missing.yaml not found") as err:
        Config.load("missing.yaml")
    assert_documented("config-file-missing", str(err.value))
    (tmp_path / "cfg.txt").write_text("lr: 1")
    with pytest.raises(ValueError, match=r"cfg\.txt: config files end in \.json") as err:
        Config.load(tmp_path / "cfg.txt")
    assert_documented("config-file-suffix", str(err.value))


def test_a_missing_pretrained_file_is_refused_by_validate_naming_it_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="'pretrained_file': weights.pth does not exist") as err:
        Config(pretrained_file="weights.pth").validate()
    assert_documented("pretrained-file-missing", str(err.value))
    (tmp_path / "weights.pth").write_bytes(b"")
    Config(pretrained_file="weights.pth").validate()


def _refused(**changes) -> str:
    with pytest.raises(ConfigError, match=f"config field '{next(iter(changes))}' is ") as err:
        Config(**changes).validate()
    return str(err.value)


def test_technique_fields_are_refused_naming_the_field_and_what_it_expects():
    assert_documented("pseudo-targets-unknown", _refused(pseudo_targets="sofft"))
    assert_documented("drop-ages-spec", _refused(drop_ages="27_29"))
    assert_documented("mix-lam-range", _refused(mix_lam=(0.6, 0.4)))
    assert_documented("ema-decay-range", _refused(ema_decay=1.0))
    assert_documented("refit-kfold", _refused(refit="continue", folds="all"))


def test_smoke_variant_keeps_the_recipe_and_shrinks_the_run():
    cfg = Config(model="resnet10t", head="multi", loss="focal", preset="strong", epochs=30)
    smoke = cfg.smoke_variant()
    assert (smoke.model, smoke.head, smoke.loss, smoke.preset) == (
        "resnet10t",
        "multi",
        "focal",
        "strong",
    )
    assert smoke.smoke and smoke.epochs <= 2 and smoke.max_steps_per_epoch is not None
    assert smoke.smoke_variant() == smoke  # idempotent


# ---- command line ---------------------------------------------------------------------------
def test_cli_overrides_every_kind_of_field():
    base = Config(name="recipe", epochs=3)
    cfg = parse_args(
        base,
        [
            "--model",
            "efficientnet_b0",
            "--lr",
            "3e-4",
            "--epochs",
            "10",
            "--image-size",
            "128",
            "96",
            "--fixes",
            "builtin",
            "--head-losses",
            "age=focal,mask=cross_entropy",
            "--head-weights",
            "age=2",
            "--loss-kwargs",
            "gamma=2,class_weights=balanced",
            "--no-amp",
            "--fold",
            "1",
            "--workers",
            "auto",
            "--crop",
            "0.5",
            "0.75",
        ],
    )
    assert cfg.model == "efficientnet_b0" and cfg.lr == 3e-4 and cfg.epochs == 10
    assert cfg.image_size == (128, 96)  # numbers, never a list of characters
    assert cfg.crop == (0.5, 0.75)
    assert cfg.fixes == "builtin"
    assert cfg.head_losses == {"age": "focal", "mask": "cross_entropy"}
    assert cfg.head_weights == {"age": 2.0}
    assert cfg.loss_kwargs == {"gamma": 2, "class_weights": "balanced"}
    assert cfg.amp is False and cfg.fold == 1 and cfg.workers == "auto"
    assert cfg.name == "recipe"  # untouched fields keep the recipe's values


def test_cli_none_list_and_empty_argv():
    base = Config(fold=3, fixes="builtin")
    assert parse_args(base, []) == base
    cfg = parse_args(base, ["--fold", "none", "--fixes", "builtin,extra.csv"])
    assert cfg.fold is None and cfg.fixes == ["builtin", "extra.csv"]


def test_cli_precedence_recipe_then_file_then_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 0.5\nepochs: 7\n")
    base = Config(lr=0.1, epochs=2, batch_size=5)
    cfg = parse_args(base, ["--config", str(path), "--epochs", "9"])
    assert (cfg.lr, cfg.epochs, cfg.batch_size) == (0.5, 9, 5)


def test_cli_save_config_writes_and_exits(tmp_path):
    out = tmp_path / "saved.json"
    with pytest.raises(SystemExit) as exit_info:
        parse_args(Config(), ["--lr", "0.25", "--save-config", str(out)])
    assert exit_info.value.code == 0
    assert Config.load(out).lr == 0.25


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["--learning-rate", "0.1"], "--learning-rate"),
        (["--epochs", "ten"], "--epochs"),
        (["--image-size", "128"], "--image-size"),
        (["--image-size", "128", "x"], "int"),
        (["--head-weights", "age"], "KEY=VALUE"),
        (["--lr", "fast"], "float"),
    ],
)
def test_cli_errors_name_the_option(capsys, argv, needle):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(Config(), argv)
    assert exit_info.value.code == 2
    seen = capsys.readouterr().err
    assert needle in seen
    if argv == ["--learning-rate", "0.1"]:  # the page's examples
        assert_documented("cli-unknown-flag", seen)
    if argv == ["--epochs", "ten"]:
        assert_documented("cli-bad-value", seen)
    if argv == ["--image-size", "128"]:
        assert_documented("cli-tuple", seen)
    if argv == ["--head-weights", "age"]:
        assert_documented("cli-dict", seen)


def test_cli_help_lists_every_field_with_its_default(capsys):
    with pytest.raises(SystemExit):
        parse_args(Config(epochs=17), ["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for f in dataclasses.fields(Config):
        assert "--" + f.name.replace("_", "-") in text
    assert "default: 17" in text
    assert "--save-config" in text and "--config" in text


@settings(max_examples=30, deadline=None)
@given(
    h=st.integers(8, 2048),
    w=st.integers(8, 2048),
    lr=st.floats(1e-8, 10, allow_nan=False),
    epochs=st.integers(1, 500),
)
def test_cli_numbers_round_trip(h, w, lr, epochs):
    argv = ["--image-size", str(h), str(w), "--lr", repr(lr), "--epochs", str(epochs)]
    cfg = parse_args(Config(), argv)
    assert (cfg.image_size, cfg.lr, cfg.epochs) == ((h, w), lr, epochs)


def test_cli_resume_starts_from_the_run_config_then_applies_flags(tmp_path):
    run_dir = tmp_path / "20260101-000000_old"
    run_dir.mkdir()
    Config(name="old", epochs=4, lr=0.02).save(run_dir / "config.json")
    cfg = parse_args(Config(name="recipe", lr=0.5), ["--resume", str(run_dir), "--epochs", "6"])
    assert (cfg.name, cfg.lr, cfg.epochs, cfg.resume) == ("old", 0.02, 6, str(run_dir))


# ---- registries: checked by field metadata, without importing training code -----------------
@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"head": "singel"}, r"config field 'head' is 'singel' \(did you mean 'single'\?\)"),
        ({"preset": "strng"}, r"config field 'preset' is 'strng' \(did you mean 'strong'\?\)"),
        ({"tta": "hflp"}, r"config field 'tta' is 'hflp' \(did you mean 'hflip'\?\)"),
        ({"loss": "0.5*focall+f1"}, r"config field 'loss': loss spec '0.5\*focall\+f1': unknown"),
        ({"loss": "0.5focal"}, r"config field 'loss'.*cannot read loss spec '0\.5focal'"),
        ({"loss_kwargs": {"gama": 2}}, r"config field 'loss_kwargs': no loss in 'cross_entropy'"),
        (
            {"head": "multi", "head_losses": {"age": "focl"}},
            r"config field 'head_losses' \(head 'age'\): unknown loss 'focl'",
        ),
        (
            {"head": "multi", "loss": "focal", "head_losses": {"age": "f1"}}
            | {"loss_kwargs": {"gamma": 2}},
            r"config field 'loss_kwargs' \(head 'age'\): no loss in 'f1' accepts \['gamma'\]",
        ),
    ],
)
def test_validate_names_the_field_of_a_bad_registry_name(changes, message):
    with pytest.raises(ValueError, match=message) as err:
        Config(**changes).validate()
    if changes == {"loss_kwargs": {"gama": 2}}:  # the page's examples
        assert_documented("config-loss-kwargs", str(err.value))
    if changes == {"loss": "0.5focal"}:
        assert_documented("config-loss-spec", str(err.value))


def test_loss_kwargs_for_every_head_and_per_head_are_accepted():
    Config(head="multi", head_losses={"age": "focal"}, loss_kwargs={"age": {"gamma": 2}}).validate()
    Config(loss="focal+cross_entropy", loss_kwargs={"gamma": 1, "label_smoothing": 0.1}).validate()


def test_checking_a_loss_spec_builds_no_loss():
    from kit.losses import LOSSES, register_loss

    built = []

    @register_loss("_test_costly")
    def _costly(*, depth: int = 1):
        built.append(depth)
        raise AssertionError("a config check must not build the loss")

    try:
        Config(loss="0.5*_test_costly+f1", loss_kwargs={"depth": 3}).validate()
        with pytest.raises(ValueError, match=r"each accepts: .*'_test_costly': \['depth'\]"):
            Config(loss="_test_costly", loss_kwargs={"width": 3}).validate()
    finally:
        LOSSES.unregister("_test_costly")
    assert built == []


_NO_TRAINING_CODE = """
import sys
import kit.config
kit.config.Config(head="no_such_head", loss="no_such_loss", preset="x", tta="x").validate()
heavy = [m for m in ("kit.train", "kit.inference", "kit.models", "kit.losses", "kit.models",
                     "kit.transforms", "kit.data") if m in sys.modules]
print(heavy)
try:
    kit.config.check_registries(kit.config.Config())
except ValueError as err:
    print(err)
"""


@pytest.mark.slow  # a fresh interpreter, on purpose: which modules the checks import from cold
def test_config_checks_import_no_training_code():
    out = subprocess.run(
        [sys.executable, "-c", _NO_TRAINING_CODE], capture_output=True, text=True, check=True
    )
    heavy, required = out.stdout.splitlines()
    assert heavy == "[]"  # unloaded registries are skipped by validate()...
    # ...and required by check_registries, which training calls once all are imported (the
    # first field with a registry kind is named: pseudo_targets, then head, ...)
    first = next(f for f in dataclasses.fields(Config) if f.metadata["registry"])
    kind = first.metadata["registry"]
    expected = f"config field {first.name!r} names a {kind}, but no {kind} registry"
    assert required.startswith(expected)


@pytest.mark.parametrize(
    ("field", "table"),
    [
        ("amp_dtype", "kit.device:AMP_DTYPES"),
        ("refit", "kit.optim:REFITS"),
        ("mix_pairs", "kit.mixing:MIX_PAIRS"),
        ("pseudo_targets", "kit.data.pseudo:PSEUDO_TARGETS"),
    ],
)
def test_a_closed_choice_is_a_literal_field_with_the_values_its_table_dispatches(field, table):
    import importlib

    module, _, name = table.partition(":")
    hint = get_type_hints(Config)[field]
    assert get_origin(hint) is Literal
    assert sorted(get_args(hint)) == getattr(importlib.import_module(module), name).names()
    wrong = get_args(hint)[-1][:-1]  # a value one letter short
    with pytest.raises(ConfigError, match=rf"^config field '{field}' is '{wrong}' \(did you mean"):
        Config().replace(**{field: wrong})
    valid = re.escape(str(sorted(get_args(hint))))
    with pytest.raises(ConfigError, match=rf"'{field}' is 'zzz'; valid: {valid}$"):
        Config.from_dict({field: "zzz"})
    assert getattr(Config().replace(**{field: get_args(hint)[-1]}), field) == get_args(hint)[-1]


def test_check_registries_passes_once_kit_train_has_filled_every_registry():
    kinds = {f.metadata["registry"] for f in dataclasses.fields(Config)} - {None}
    assert kinds <= set(REGISTRIES), f"no registry for {sorted(kinds - set(REGISTRIES))}"
    check_registries(Config())
    with pytest.raises(UnknownName, match="config field 'head' is 'triple'"):
        check_registries(Config(head="triple"))


def test_help_lists_what_is_registered_when_the_parser_is_built(capsys):
    from kit.losses import LOSSES, register_loss

    register_loss("_test_help_loss")(lambda *, sharpness=1.0: None)
    try:
        with pytest.raises(SystemExit):
            parse_args(Config(), ["--help"])
    finally:
        LOSSES.unregister("_test_help_loss")
    text = " ".join(capsys.readouterr().out.split())
    loss_help = text[text.index("--loss TEXT loss") : text.index("--head-losses K=V,... multi")]
    for name in LOSSES.names():
        assert name in loss_help
    assert "_test_help_loss(sharpness)" in loss_help  # registered just now, with its argument
    assert "focal(class_weights, gamma)" in loss_help
    head_help = text[text.index("--head TEXT single") : text.index("--pretrained, --no")]
    assert "- multi (heads) - single (joint)" in head_help  # one line per described entry
    assert f"Registered: {', '.join(TTA.names())}" in text
