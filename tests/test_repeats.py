"""--seeds on a recipe's command line: one config trained per seed under one parent folder with
the split held fixed, shown by the ledger as one row; the two seeds of one config are within
noise on the fixture; bad repeat flags are one error line."""

from __future__ import annotations

from pathlib import Path

import pytest

import kit
from kit.recipe import SEEDS_SUFFIX, repeat_configs, seed_list
from kit.runfolder import read_config, read_val_keys
from kit.runs import load, table
from kit.splits import load_splits


def test_seed_list_counts_from_the_seed_or_takes_the_seeds():
    assert seed_list([3], 42) == [42, 43, 44]
    assert seed_list([0, 1, 2], 42) == [0, 1, 2]
    with pytest.raises(ValueError, match="at least 1"):
        seed_list([0], 42)
    with pytest.raises(ValueError, match="a seed is repeated"):
        seed_list([1, 1], 42)


def test_repeats_keep_the_split_unless_asked(tmp_path):
    cfg = kit.Config(name="b", seed=7)
    fixed = repeat_configs(cfg, [7, 8], parent=tmp_path)
    assert [(c.seed, c.split_seed, c.name) for c in fixed] == [(7, None, "b_s7"), (8, 7, "b_s8")]
    assert {c.output_dir for c in fixed} == {str(tmp_path)}
    assert fixed[0].replace(output_dir=cfg.output_dir, name="b") == cfg  # seed 7 is cfg itself
    varied = repeat_configs(cfg, [7, 8], parent=tmp_path, vary_split=True)
    assert [c.split_seed for c in varied] == [None, None]
    kept = repeat_configs(cfg.replace(split_seed=3), [7], parent=tmp_path)
    assert kept[0].split_seed == 3


def test_split_seed_decides_the_validation_people(tiny_base):
    people = {
        (seed, split): set(
            load_splits(tiny_base.replace(seed=seed, split_seed=split)).val["person_id"]
        )
        for seed, split in [(1, None), (2, 1), (2, None)]
    }
    assert people[1, None] == people[2, 1] != people[2, None]


def test_a_train_function_other_processes_cannot_take_is_one_error_line(tmp_path, capsys):
    def train(cfg: kit.Config) -> None:  # a closure: pickle cannot send it
        pytest.fail("trained")

    out = tmp_path / "runs"
    with pytest.raises(SystemExit) as info:
        kit.main(kit.Config(output_dir=str(out)), argv=["--seeds", "2", "--jobs", "2"], train=train)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --jobs 2 sends ") and "train with --jobs 1" in err
    assert not out.exists()  # refused before any folder was made


def test_bad_repeat_flags_are_one_error_line(capsys):
    for argv, message in [
        (["--seeds", "0"], "expected a count of at least 1"),
        (["--jobs", "2"], "--jobs and --vary-split go with --seeds"),
        (["--seeds", "2", "--resume", "runs/x"], "leave out --resume"),
    ]:
        with pytest.raises(SystemExit) as info:
            kit.main(kit.Config(), argv=argv, train=lambda cfg: pytest.fail("trained"))
        assert info.value.code == 2
        assert message in capsys.readouterr().err


def test_seeds_train_under_one_folder_and_the_ledger_shows_one_row(tiny_cfg, capsys):
    cfg = tiny_cfg.replace(epochs=1)
    runs = kit.main(cfg, argv=["--seeds", "2"])
    assert [r.config.seed for r in runs] == [42, 43]
    (parent,) = Path(cfg.output_dir).iterdir()
    assert parent.name.endswith(f"_t{SEEDS_SUFFIX}")
    assert sorted(r.run_dir.parent for r in runs) == [parent, parent]
    assert read_config(runs[1].run_dir)["split_seed"] == 42
    # the split held fixed: both seeds validate on the same pictures
    a, b = (read_val_keys(r.run_dir) for r in runs)
    assert sorted(a.ids) == sorted(b.ids)
    assert f"2 seeds under {parent}" in capsys.readouterr().out
    df = load(cfg.output_dir)
    (row,) = table(df).to_dict("records")
    assert (row["name"], row["n"]) == (parent.name, 2)
    # two seeds of one config, one against the other: within the noise of the validation people
    each = table(df, vs=runs[0].run_dir.name, group=False).set_index("name")
    other = each.loc[runs[1].run_dir.name]
    assert other["verdict"] == "within noise" and other["noise"].startswith("bootstrap over")
    assert other["changes"] == "seed: 42 -> 43"


@pytest.mark.slow  # two fresh interpreters
def test_seeds_side_by_side_give_the_runs_of_one_after_the_other(tiny_cfg):
    cfg = tiny_cfg.replace(epochs=1)
    one = kit.main(cfg.replace(output_dir=cfg.output_dir + "/one"), argv=["--seeds", "2"])
    side = kit.main(
        cfg.replace(output_dir=cfg.output_dir + "/side"), argv=["--seeds", "2", "--jobs", "2"]
    )
    assert [r.best_score for r in side] == [r.best_score for r in one]
    assert [r.config.seed for r in side] == [42, 43]
