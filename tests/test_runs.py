"""kit.runs: the ledger over hand-made run folders, diffs, flags, markdown, sorting, CLI."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from kit.config import Config
from kit.runs import IGNORED_FIELDS, diff, ledger_row, load, table, to_markdown
from tests._runfolders import RunSpec, metrics_row, summary, write_run

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2024, 1, 10, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def runs(tmp_path) -> Path:
    root = tmp_path / "runs"
    # name, output_dir, quiet, workers, device and cache differ too: run / output / machine
    # fields, never a change
    write_run(root, RunSpec("base", "20240101-100000", summary=summary(0.70, mask=0.91)))
    write_run(
        root,
        RunSpec(
            "lr",
            "20240102-100000",
            config={"lr": 0.001, "quiet": True, "workers": 4, "device": "cuda", "cache": False},
            summary=summary(0.72, best_epoch=5),
            env={"user": "bob", "git_dirty": True, "git_commit": "fedcba9876543210"},
        ),
    )
    write_run(
        root,
        RunSpec(
            "lr_focal",
            "20240103-100000",
            config={"lr": 0.001, "loss": "focal", "output_dir": "elsewhere"},
            summary=summary(0.75, age=0.66),
        ),
    )
    metrics = [metrics_row(1, 0.50), metrics_row(2, 0.61, age=0.4), metrics_row(3, 0.55)]
    write_run(
        root,
        RunSpec(
            "died",
            "20240104-100000",
            config={"age_thresholds": [30, 58]},
            status="running",
            updated="2024-01-04T11:00:00+00:00",
            metrics=metrics,
        ),
    )
    write_run(root, RunSpec("stopped", "20240105-100000", status="interrupted", metrics=metrics))
    return root


def test_load_one_row_per_run(runs):
    df = load(runs, now=NOW).set_index("name")
    assert sorted(df.index) == sorted(p.name for p in runs.iterdir())
    row = df.loc["20240102-100000_lr"]
    assert (row.user, row.commit, bool(row.dirty)) == ("bob", "fedcba9", True)
    assert (row.status, row.val_macro_f1, row.best_epoch) == ("complete", 0.72, 5)
    assert row["cfg.lr"] == 0.001 and row["cfg.model"] == "mobilenetv3_small_050"
    assert row.date == "2024-01-02 12:00"
    # no summary.json: the best metrics.csv epoch stands in
    died = df.loc["20240104-100000_died"]
    assert (died.val_macro_f1, died.val_f1_age, died.best_epoch) == (0.61, 0.4, 2)
    assert died["cfg.age_thresholds"] == "[30,58]"


def test_stale_running_is_incomplete_and_fresh_running_is_running(runs):
    statuses = load(runs, now=NOW).set_index("name")["status"]
    assert statuses["20240104-100000_died"] == "incomplete"
    assert statuses["20240105-100000_stopped"] == "interrupted"
    just_after = datetime(2024, 1, 4, 11, 30, tzinfo=timezone.utc)
    assert load(runs, now=just_after).set_index("name")["status"]["20240104-100000_died"] == (
        "running"
    )
    assert (
        load(runs, now=just_after, stale_after=timedelta(minutes=10)).set_index("name")["status"][
            "20240104-100000_died"
        ]
        == "incomplete"
    )


def test_table_hides_controlled_and_ignored_fields(runs):
    shown = table(load(runs, now=NOW))
    fields = [c for c in shown.columns if c not in ("name", "date", "who", "status")]
    assert {"lr", "loss", "age_thresholds"} <= set(fields)
    for hidden in ("seed", "model", "epochs", *IGNORED_FIELDS):
        assert hidden not in fields
    assert "seed" in table(load(runs, now=NOW), all_fields=True).columns
    assert "bob@fedcba9*" in shown["who"].tolist()


def test_vs_baseline_flags_uncontrolled_runs(runs):
    shown = table(load(runs, now=NOW), vs="base").set_index("name")
    assert shown.loc["20240101-100000_base", "flag"] == "baseline"
    assert shown.loc["20240102-100000_lr", "changes"] == "lr: 0.003 -> 0.001"
    assert shown.loc["20240102-100000_lr", "flag"] == ""
    assert shown.loc["20240103-100000_lr_focal", "flag"] == "UNCONTROLLED (2 changes)"
    assert "loss: cross_entropy -> focal" in shown.loc["20240103-100000_lr_focal", "changes"]
    assert shown.loc["20240105-100000_stopped", "flag"] == "same config"
    with pytest.raises(ValueError, match="matches 2 runs"):
        table(load(runs, now=NOW), vs="_l")  # a substring of two folder names


def test_vs_a_run_name_means_its_newest_run(runs):
    df = load(runs, now=NOW)
    df.loc[df["name"].str.endswith("_lr_focal"), "cfg.name"] = "lr"  # now two runs named "lr"
    shown = table(df, vs="lr").set_index("name")
    assert shown.loc["20240103-100000_lr_focal", "flag"] == "baseline"
    assert shown.loc["20240102-100000_lr", "changes"] == "loss: focal -> cross_entropy"


def test_diff_of_run_folders(runs):
    base, lr, focal = (runs / n for n in sorted(p.name for p in runs.iterdir())[:3])
    assert diff(base, lr) == {"lr": (0.003, 0.001)}  # quiet / workers / device / name ignored
    assert diff(base, focal) == {"lr": (0.003, 0.001), "loss": ("cross_entropy", "focal")}
    assert diff(base, base) == {}
    assert "name" in diff(base, lr, ignore=())


def test_sort_scores_descending_others_ascending(runs):
    df = load(runs, now=NOW)
    by_f1 = table(df, sort="val_macro_f1")["name"].str[16:].tolist()
    assert by_f1 == ["lr_focal", "lr", "base", "died", "stopped"]
    by_epoch = table(df, sort="best_epoch")["best_epoch"].tolist()
    assert by_epoch == sorted(by_epoch)
    with pytest.raises(ValueError, match="cannot sort by 'nope'"):
        table(df, sort="nope")


def test_markdown_table():
    df = pd.DataFrame({"name": ["a|b", "c"], "val_macro_f1": [0.5, float("nan")]})
    assert to_markdown(df).splitlines() == [
        "| name | val_macro_f1 |",
        "| --- | --- |",
        "| a\\|b | 0.5000 |",
        "| c | - |",
    ]


def test_kfold_parent_and_its_folds(tmp_path):
    root = tmp_path / "runs"
    parent = write_run(
        root, RunSpec("cv_kfold", "20240201-100000", config={"fold": None}, summary=summary(0.7))
    )
    for k in range(2):
        write_run(parent, RunSpec(f"cv_fold{k}", f"2024020{k + 1}-110000", config={"fold": k}))
    # a fold run beside the parent, known only from the parent's summary.json
    side = write_run(root, RunSpec("cv_fold2", "20240201-120000", config={"fold": 2}))
    body = json.loads((parent / "summary.json").read_text())
    body["folds"] = [{"fold": 2, "run_dir": str(side), "val_macro_f1": 0.7}]
    (parent / "summary.json").write_text(json.dumps(body))
    df = load(root, now=NOW).set_index("name")
    assert len(df) == 4
    assert df["parent"].dropna().to_dict() == {
        "20240201-110000_cv_fold0": parent.name,
        "20240202-110000_cv_fold1": parent.name,
        side.name: parent.name,
    }
    assert bool(df.loc[parent.name, "kfold"])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kit.runs", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_cli_markdown_vs_and_errors(runs):
    out = _cli(str(runs), "--vs", "base", "--markdown", "--sort", "val_macro_f1")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("| name | date | who | status |") and set(lines[1]) <= set("|- ")
    assert len(lines) == 2 + 5
    assert "lr_focal" in lines[2] and "UNCONTROLLED (2 changes)" in lines[2]
    assert "incomplete" in out.stdout and "interrupted" in out.stdout
    plain = _cli(str(runs))
    assert plain.returncode == 0 and "workers" not in plain.stdout and "lr" in plain.stdout
    bad = _cli(str(runs), "--vs", "nobody")
    assert bad.returncode == 2 and "no run 'nobody'" in bad.stderr
    missing = _cli(str(runs / "nope"))
    assert missing.returncode == 2 and "no such folder" in missing.stderr


def test_changes_show_whole_numbers_without_a_decimal_point(runs):
    df = load(runs, now=NOW)
    df["cfg.limit_people"] = [12.0 if n.endswith("_lr") else None for n in df["name"]]
    shown = table(df, vs="base").set_index("name")
    assert "limit_people: - -> 12" in shown.loc["20240102-100000_lr", "changes"]


def test_ignored_fields_are_the_fields_that_are_not_experiments():
    roles = {f.name: f.metadata["role"] for f in dataclasses.fields(Config)}
    assert set(IGNORED_FIELDS) == {name for name, role in roles.items() if role != "experiment"}
    # the fields the ledger always hid, and the machine fields that joined them
    assert {"name", "output_dir", "resume", "quiet", "workers", "device", "cache"} <= set(
        IGNORED_FIELDS
    )
    assert not {"lr", "seed", "model", "loss", "epochs"} & set(IGNORED_FIELDS)


def test_a_machine_field_is_no_change_and_an_experiment_field_is():
    base = Config()
    faster = base.replace(device="cpu", workers=3, cache=False, eval_batch_size=7, quiet=True)
    assert diff(base.to_dict(), faster.to_dict()) == {}
    assert diff(base.to_dict(), faster.replace(seed=1).to_dict()) == {"seed": (42, 1)}
    assert "device" in diff(base.to_dict(), faster.to_dict(), ignore=())


def test_table_hides_a_machine_field_that_varies(runs):
    df = load(runs, now=NOW)
    assert df["cfg.device"].nunique() == 2  # the lr run says cuda, the others auto
    assert "device" not in table(df).columns and "cache" not in table(df).columns
    assert "device" not in table(df, all_fields=True).columns


def test_ledger_row_of_a_run_folder(runs):
    row = ledger_row(runs / "20240103-100000_lr_focal", now=NOW)
    assert (row["name"], row["status"]) == ("20240103-100000_lr_focal", "complete")
    assert (row["val_macro_f1"], row["val_f1_age"], row["best_epoch"]) == (0.75, 0.66, 3)
    assert (row["user"], row["commit"], row["kfold"]) == ("alice", "0123456", False)
    assert row["cfg.loss"] == "focal" and row["cfg.output_dir"] == "elsewhere"


def test_unreadable_metrics_csv_names_the_file(runs):
    died = runs / "20240104-100000_died"
    (died / "metrics.csv").write_text('epoch,val_macro_f1\n1,"0.5\n')
    with pytest.raises(ValueError, match=r"metrics\.csv: not a readable CSV"):
        ledger_row(died, now=NOW)
