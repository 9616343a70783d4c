"""kit.main with a recipe's own ``train``: the flags on top of the recipe's config, its result
returned, kit's errors as one ``error:`` line and exit code 2 (no training here: seconds)."""

from __future__ import annotations

import albumentations as A
import pytest

import kit


def test_train_gets_the_parsed_config_and_main_returns_its_result():
    seen = []

    def train(cfg: kit.Config) -> tuple[int, float]:
        seen.append(cfg)
        return cfg.epochs, cfg.lr

    base = kit.Config(name="two_fits", epochs=7)
    got = kit.main(base, argv=["--lr", "0.5", "--epochs", "3"], train=train)
    assert got == (3, 0.5)
    assert len(seen) == 1 and seen[0].name == "two_fits"  # the recipe's values under the flags


def test_a_kit_error_in_train_is_one_error_line_and_exit_2(capsys):
    def train(cfg: kit.Config) -> None:
        raise ValueError(f"member {cfg.name}: no eval set; pass --data-dir with eval/")

    with pytest.raises(SystemExit) as info:
        kit.main(kit.Config(name="m"), argv=[], train=train)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: member m: no eval set; pass --data-dir with eval/"


def test_a_bug_in_train_keeps_its_traceback_and_bad_flags_never_reach_it(capsys):
    def train(cfg: kit.Config) -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError, match="bug"):
        kit.main(kit.Config(), argv=[], train=train)
    calls = []
    with pytest.raises(SystemExit) as info:
        kit.main(kit.Config(), argv=["--no-such-flag"], train=calls.append)
    assert info.value.code == 2 and calls == []
    assert "--no-such-flag" in capsys.readouterr().err


def test_train_and_train_transform_together_is_refused():
    with pytest.raises(TypeError, match="pass the transform to kit.fit"):
        kit.main(kit.Config(), A.HorizontalFlip(), argv=[], train=lambda cfg: None)
