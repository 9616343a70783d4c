"""kit.tune: the search space, trials as tagged run folders, pruning, a study continued after a
restart or a killed trial, two workers on one SQLite study, the report and the plots."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

import kit
from kit.config import Config
from kit.runs.__main__ import main as runs_main
from kit.tune import (
    Param,
    default_storage,
    importance,
    load_recipe,
    parse_space,
    report,
    write_plots,
)
from kit.tune.__main__ import main as tune_main
from kit.tune.study import counted, open_storage, open_study
from tests import _proc
from tests._triggers import assert_documented

ROOT = Path(__file__).resolve().parents[1]
SPACE = {"lr": "log:1e-4:1e-2", "loss": ["cross_entropy", "focal"]}


class PruneOddTrials(optuna.pruners.BasePruner):
    """Prunes every odd-numbered trial at its first report: the test decides, not the scores."""

    def prune(self, study, trial):
        return trial.number % 2 == 1


def _trials(tiny_cfg: Config) -> Config:
    """The trials' config: the tests' tiny run (two epochs, so a trial reports twice)."""
    return tiny_cfg.replace(name="s")


def _config(run_dir: str) -> dict:
    return json.loads((Path(run_dir) / "config.json").read_text())


def _status(run_dir: str) -> str:
    return json.loads((Path(run_dir) / "status.json").read_text())["status"]


def test_space_texts():
    lr, epochs, loss, amp = parse_space(
        ["lr=log:1e-4:1e-2", "epochs=1:3", "loss=cross_entropy, focal", "amp=true,false"]
    )
    assert lr == Param("lr", 1e-4, 1e-2, log=True)
    assert epochs == Param("epochs", 1, 3, integer=True)
    assert loss.choices == ("cross_entropy", "focal") and amp.choices == (True, False)
    assert parse_space({"fold": "0,1"})[0].choices == (0, 1)  # int | None reads as int


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lr", "expected NAME=SPEC"),
        ("lrr=1:2", r"unknown config field 'lrr' \(did you mean 'lr'\?\)"),
        ("lr=1e-2:1e-4", "LOW must be below HIGH"),
        ("lr=log:0:1", r"a log range needs LOW > 0"),
        ("lr=a:b", "'a' is not a number"),
        ("epochs=1.5:3", "'1.5' is not an integer"),
        ("image_size=1:2", "holds more than one value; it cannot be searched"),
        ("epochs=two", "expected int"),
    ],
)
def test_space_errors(text, message):
    with pytest.raises(ValueError, match=message) as err:
        parse_space([text])
    seen = str(err.value)
    if text == "lr":
        assert_documented("tune-param-format", seen)
    elif text == "lrr=1:2":
        assert_documented("tune-param-field", seen)
    elif text == "lr=1e-2:1e-4":
        assert_documented("tune-param-range", seen)
    elif text == "lr=log:0:1":
        assert_documented("tune-param-log", seen)
    elif text == "lr=a:b":
        assert_documented("tune-param-number", seen)
    elif text == "image_size=1:2":
        assert_documented("tune-param-field-kind", seen)


def test_search_runs_tagged_trials_prunes_and_continues(tiny_cfg):
    # two trials, then a restart that adds the third: three tiny trainings in all (one of
    # them pruned after its first epoch)
    base = _trials(tiny_cfg)
    study = kit.tune(base, SPACE, 2, pruner=PruneOddTrials(), seed=0)
    assert [t.number for t in study.get_trials()] == [0, 1]
    again = kit.tune(base, SPACE, 3, pruner=PruneOddTrials())  # a restart continues the study
    trials = again.get_trials()
    assert [t.number for t in trials] == [0, 1, 2]
    assert [t.state for t in trials] == [
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.COMPLETE,
    ]
    for t in trials:
        config = _config(t.user_attrs["run_dir"])
        assert (config["study"], config["trial"], config["name"]) == (
            "s",
            t.number,
            f"s-trial{t.number}",
        )
        assert config["lr"] == t.params["lr"] and config["loss"] == t.params["loss"]
        expected = "pruned" if t.state == TrialState.PRUNED else "complete"
        assert _status(t.user_attrs["run_dir"]) == expected
    summary = json.loads((Path(trials[0].user_attrs["run_dir"]) / "summary.json").read_text())
    assert trials[0].value == summary["val_macro_f1"]
    assert list(trials[0].intermediate_values) == [1, 2]  # every epoch reported
    assert Path(default_storage(base.output_dir).removeprefix("sqlite:///")).is_file()


def _trial_of_a_dead_worker(output_dir: str, distributions: dict) -> None:
    """Study ``s`` with one trial left running by a worker process that has since ended."""
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    study = optuna.create_study(
        study_name="s", storage=default_storage(output_dir), direction="maximize"
    )
    killed = study.ask(distributions)
    killed.set_user_attr("pid", int(ended.stdout))  # as its worker left it when killed
    killed.set_user_attr("host", __import__("socket").gethostname())


@pytest.mark.slow  # a worker killed mid-trial: a fresh interpreter training, then a resumed study
def test_a_trial_killed_mid_way_is_failed_and_rerun_with_its_parameters(tiny_cfg):
    base = _trials(tiny_cfg)
    _trial_of_a_dead_worker(
        base.output_dir,
        {
            "lr": FloatDistribution(1e-4, 1e-2, log=True),
            "loss": CategoricalDistribution(["cross_entropy", "focal"]),
        },
    )
    study = kit.tune(base, SPACE, 2, pruner=optuna.pruners.NopPruner())
    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL
    assert trials[1].params == trials[0].params and trials[1].state == TrialState.COMPLETE
    assert len(trials) == 3 and [t.number for t in counted(study)] == [1, 2]


def test_a_kfold_config_is_refused_naming_the_one_split_per_trial(tiny_cfg):
    with pytest.raises(ValueError, match="one split per trial") as err:
        kit.tune(tiny_cfg.replace(folds="all"), {"lr": "1e-3"}, 1)
    assert not Path(tiny_cfg.output_dir).exists() or not list(Path(tiny_cfg.output_dir).iterdir())
    assert_documented("tune-folds", str(err.value))


def test_a_trial_whose_worker_ended_is_marked_failed_saying_why(tiny_cfg, caplog):
    # one one-step trial after the dead worker's trial: the fast case of the slow test above
    base = tiny_cfg.replace(name="s", epochs=1, max_steps_per_epoch=1)
    _trial_of_a_dead_worker(base.output_dir, {"lr": CategoricalDistribution([1e-3])})
    with caplog.at_level(logging.WARNING, logger="kit"):
        study = kit.tune(base, {"lr": "1e-3"}, 1)
    assert study.get_trials()[0].state == TrialState.FAIL
    assert "trial 0: its process ended mid-trial; marked failed" in caplog.text
    assert_documented("tune-trial-died", caplog.text)


def _finished_study(tmp_path: Path) -> optuna.Study:
    """A study filled by hand: the report and the plots need no training."""
    study = optuna.create_study(direction="maximize", study_name="hand")
    dists = {
        "lr": FloatDistribution(1e-4, 1e-2, log=True),
        "loss": CategoricalDistribution(["cross_entropy", "focal"]),
    }
    for k, (lr, loss, value) in enumerate(
        [
            (1e-4, "focal", 0.2),
            (1e-3, "cross_entropy", 0.5),
            (3e-3, "focal", 0.7),
            (1e-2, "focal", 0.4),
        ]
    ):
        params, attrs = {"lr": lr, "loss": loss}, {"run_dir": f"runs/t{k}"}
        study.add_trial(
            create_trial(params=params, distributions=dists, value=value, user_attrs=attrs)
        )
    return study


def test_report_names_the_best_trial_its_changes_and_the_importances(tmp_path):
    study = _finished_study(tmp_path)
    text = report(study, Config(lr=3e-3), "sqlite:///x.db")
    assert "study hand: 4 trials (4 complete) in sqlite:///x.db" in text
    assert "best: trial 2, val macro F1 0.7000, run folder runs/t2" in text
    assert "  loss: 'cross_entropy' -> 'focal'" in text and "lr:" not in text.split("importance")[0]
    found = importance(study)
    assert set(found) == {"lr", "loss"} and sum(found.values()) == pytest.approx(1.0)
    assert all(f"  {k}" in text for k in found)
    written = write_plots(study, tmp_path / "plots")
    assert [p.name for p in written] == ["history.png", "importance.png"]
    assert all(p.stat().st_size > 1000 for p in written)
    one = optuna.create_study(direction="maximize")
    one.add_trial(create_trial(params={}, distributions={}, value=0.1))
    assert "parameter importance: needs 2 or more complete trials" in report(one, Config(), "m")


def test_optuna_is_loaded_only_when_a_study_is_used():
    """The space, a recipe's config and ``--help`` answer without Optuna; the report loads it."""
    code = (
        "import runpy, sys, kit.tune\n"
        "kit.tune.parse_space({'lr': 'log:1e-4:1e-2'})\n"
        "sys.argv = ['kit.tune', '--help']\n"
        "try:\n"
        "    runpy.run_module('kit.tune', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "before = 'optuna' in sys.modules\n"
        "kit.tune.report\n"
        "print(before, 'optuna' in sys.modules, file=sys.stderr)\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "usage: python -m kit.tune" in found.stdout
    assert found.stderr.split()[-2:] == ["False", "True"], found.stderr


def test_recipe_config_is_loaded_from_the_file(tmp_path):
    assert load_recipe(ROOT / "recipes" / "baseline.py").name == "baseline"
    bad = tmp_path / "bad.py"
    bad.write_text("X = 1\n")
    with pytest.raises(ValueError, match="a recipe defines config") as err:
        load_recipe(bad)
    assert_documented("tune-recipe-config", str(err.value))


@pytest.mark.slow  # two processes, each importing torch and training 2-3 smoke trials
def test_two_workers_share_one_sqlite_study_without_duplicates(tmp_path):
    out = tmp_path / "runs"
    command = [
        sys.executable,
        "-m",
        "kit.tune",
        str(ROOT / "recipes" / "baseline.py"),
        "--trials",
        "4",
        "--param",
        "lr=log:1e-4:1e-2",
        "--no-prune",
        "--study",
        "two",
        "--smoke",
        "--quiet",
        "--output-dir",
        str(out),
    ]
    workers = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    logs = [w.communicate(timeout=400)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], logs
    study = optuna.load_study(study_name="two", storage=default_storage(out))
    trials = study.get_trials()
    assert 4 <= len(trials) <= 5  # two workers racing for the last trial may both start one
    assert all(t.state == TrialState.COMPLETE for t in trials)
    folders = sorted(p for p in out.iterdir() if p.is_dir())
    assert sorted(_config(str(p))["trial"] for p in folders) == [t.number for t in trials]
    assert sorted(Path(t.user_attrs["run_dir"]).name for t in trials) == [p.name for p in folders]
    assert all("best: trial" in log for log in logs)
    listed = _proc.run(
        [sys.executable, "-m", "kit.runs", str(out), "--study", "two"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert all(p.name in listed for p in folders)


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    recipe = str(ROOT / "recipes" / "baseline.py")
    out = ["--output-dir", str(tmp_path / "runs"), "--smoke"]
    assert tune_main([recipe, "--trials", "2", "--param", "loss=focall", *out]) == 2
    err = capsys.readouterr().err
    assert "error: search parameter loss='focall': config field 'loss'" in err
    assert_documented("tune-param-value", err)
    assert tune_main([str(tmp_path / "none.py"), "--trials", "1", "--param", "lr=1:2"]) == 2
    err = capsys.readouterr().err
    assert "error: recipe" in err
    assert_documented("tune-recipe-missing", err)
    assert runs_main([str(tmp_path), "--study", "x"]) == 0


_OPEN_AT = """
import sys, time
from kit.tune.study import open_storage, open_study
for url in sys.argv[1:]:
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    while time.time() < start:  # both workers open each new database at once
        time.sleep(0.001)
    open_study("two", open_storage(url))
"""


@pytest.mark.slow  # two fresh interpreters racing to create one database
def test_two_workers_creating_one_new_sqlite_database_at_once_both_open_it(tmp_path):
    # Without the lock beside the file, about one start in two failed with
    # "table studies already exists" (the race CI hit with two kit.tune workers).
    urls = [default_storage(tmp_path / f"db{i}") for i in range(4)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_AT, *urls],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    logs = ["", ""]
    for _ in urls:  # each database: both workers have imported and opened the last one, then go
        for i, w in enumerate(workers):
            while (line := w.stdout.readline()) not in ("ready\n", ""):
                logs[i] += line
        start = f"{time.time() + 0.2}\n"
        for w in workers:
            with contextlib.suppress(BrokenPipeError):  # a worker that failed: its log says why
                w.stdin.write(start)
                w.stdin.flush()
    for i, w in enumerate(workers):
        logs[i] += w.communicate(timeout=120)[0]
    assert [w.returncode for w in workers] == [0, 0], logs
    for url in urls:
        assert optuna.load_study(study_name="two", storage=url).get_trials() == []


def test_a_storage_in_a_folder_not_there_yet_makes_the_folder(tmp_path):
    """--storage sqlite:///missing/folder/study.db: the folder is made, as the default
    storage's is (a teammate's new study folder), and the study opens there."""
    url = f"sqlite:///{tmp_path / 'missing' / 'folder' / 'study.db'}"
    open_study("s", open_storage(url))
    assert (tmp_path / "missing" / "folder" / "study.db").is_file()
    assert optuna.load_study(study_name="s", storage=url).get_trials() == []
