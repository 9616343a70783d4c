"""kit.runs: the ledger over hand-made run folders, diffs, flags, markdown, sorting, CLI."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest

from kit.config import Config
from kit.runs import (
    IGNORED_FIELDS,
    BaselineChoice,
    RunSkipped,
    diff,
    ledger_row,
    load,
    table,
    to_markdown,
)
from kit.runs.__main__ import main as runs_main
from tests import _proc
from tests._runfolders import RunSpec, metrics_row, summary, write_run
from tests._triggers import assert_documented

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
    with pytest.warns(BaselineChoice, match="'lr' names 2 runs; comparing with the newest"):
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
    """``python -m kit.runs ARGS`` in this process (its ``main``, as the module runs it): its
    exit code and what it printed, without the second or two a fresh interpreter costs."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = runs_main(list(args))
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


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
    unknown = _cli(str(runs), "--vs", "nope")  # the page's example
    assert_documented("ledger-unknown-run", unknown.stderr)
    missing = _cli(str(runs / "nope"))
    assert missing.returncode == 2 and "no such folder" in missing.stderr
    assert_documented("ledger-no-folder", missing.stderr)


def test_plot_of_runs_without_metrics_is_refused_saying_so(tmp_path):
    root = tmp_path / "runs"
    write_run(root, RunSpec("early", "20240101-000000", status="failed"))  # died in epoch 1
    out = _cli(str(root), "--plot", str(tmp_path / "x.png"))
    assert out.returncode == 2 and not (tmp_path / "x.png").exists()
    assert_documented("ledger-plot-empty", out.stderr)


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


# ---- one damaged folder, width, filters, columns, prune, errors (issues #15, #16) -------------

_DAMAGE = {
    "config.json": "{not json",
    "summary.json": "[1, 2]",
    "status.json": '{"status": "runn',
    "metrics.csv": 'epoch,val_macro_f1\n1,"0.5\n',
}


@pytest.mark.parametrize("damaged", sorted(_DAMAGE))
def test_one_damaged_folder_is_skipped_with_one_warning(runs, damaged):
    bad = runs / "20240104-100000_died"
    (bad / damaged).write_text(_DAMAGE[damaged])
    out = _cli(str(runs))
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("\n") == 1 and out.stderr.startswith(f"warning: skipped {bad}: ")
    assert_documented("ledger-skipped-run", out.stderr)
    assert damaged in out.stderr and "Traceback" not in out.stderr
    assert "died" not in out.stdout and "lr_focal" in out.stdout and "stopped" in out.stdout
    with pytest.warns(RunSkipped, match=damaged):
        assert len(load(runs, now=NOW)) == 4


def test_a_damaged_folds_list_is_skipped_too(runs):
    path = runs / "20240101-100000_base" / "summary.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "folds": "0,1"}))
    with pytest.warns(RunSkipped, match=r"summary\.json: 'folds' is str"):
        assert "20240101-100000_base" not in load(runs, now=NOW)["name"].tolist()


def _ten_runs(root: Path) -> Path:
    for k in range(10):
        write_run(
            root,
            RunSpec(
                f"resnet50_focal_mixup_try{k}",
                f"202402{k + 10}-100000",
                config={
                    "lr": 0.001 * (k + 1),
                    "loss": "focal" if k % 2 else "cross_entropy",
                    "head_losses": {
                        "mask": "focal",
                        "gender": "cross_entropy",
                        "age": f"label_smoothing_{k}",
                    },
                    "epochs": k + 1,
                },
                summary=summary(0.5 + k / 100),
                env={"user": "a_long_user_name"},
            ),
        )
    return root


def test_default_table_fits_120_columns_and_csv_markdown_keep_everything(tmp_path):
    root = _ten_runs(tmp_path / "runs")
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    for args in ([], ["--vs", "try0"]):
        cmd = [sys.executable, "-m", "kit.runs", str(root), *args]
        out = _proc.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120, env=env)
        assert out.returncode == 0, out.stderr
        lines = out.stdout.splitlines()
        assert len(lines) >= 2 + 10 + 1 and max(map(len, lines)) <= 120, out.stdout
        assert lines[0].split()[:3] == ["name", "status", "f1"] and "more columns:" in lines[12]
        assert_documented("ledger-hidden-columns", lines[12])
        assert all(f"resnet50_focal_mixup_try{k}" in out.stdout for k in range(10))  # names whole
    wide = _cli(str(root), "--vs", "try0", "--csv")
    frame = pd.read_csv(io.StringIO(wide.stdout))
    assert len(frame) == 10 and {"date", "who", "val_accuracy", "head_losses", "flag"} <= set(
        frame.columns
    )
    md = _cli(str(root), "--markdown").stdout.splitlines()
    assert md[0].startswith("| name | date | who | status | val_macro_f1 |")
    assert "label_smoothing_9" in _cli(str(root), "--width", "0").stdout


def test_filters_and_columns(runs):
    write_run(
        runs, RunSpec("smoke", "20240106-100000", config={"smoke": True}, summary=summary(0.1))
    )
    names = lambda out: [line.split()[0][16:] for line in out.stdout.splitlines()[2:]]  # noqa: E731
    assert names(_cli(str(runs), "--name", "lr", "--columns", "name")) == ["lr", "lr_focal"]
    assert names(_cli(str(runs), "--name", "*_l?", "--columns", "name")) == ["lr"]
    assert names(_cli(str(runs), "--status", "complete", "--no-smoke", "--columns", "name")) == [
        "base",
        "lr",
        "lr_focal",
    ]
    assert "smoke" in names(_cli(str(runs), "--status", "complete", "--columns", "name"))
    picked = _cli(str(runs), "--columns", "name,f1,lr", "--name", "focal").stdout.splitlines()
    assert picked[0].split() == ["name", "f1", "lr"] and picked[2].split()[1:] == [
        "0.7500",
        "0.001",
    ]
    bad = _cli(str(runs), "--columns", "name,nope")
    assert bad.returncode == 2 and bad.stderr.startswith("error: --columns: unknown column(s) nope")
    assert_documented("ledger-columns-unknown", bad.stderr)
    bad = _cli(str(runs), "--status", "done")
    assert bad.returncode == 2 and "expected any of complete" in bad.stderr
    assert_documented("ledger-status-unknown", bad.stderr)
    # the baseline stays in the table even when the filter leaves it out
    vs = _cli(str(runs), "--vs", "base", "--name", "focal", "--columns", "name,flag").stdout
    assert "baseline" in vs and "UNCONTROLLED" in vs and "_lr " not in vs


def test_vs_a_shared_run_name_says_which_run_it_took(runs):
    again = write_run(runs, RunSpec("base", "20240109-100000", summary=summary(0.71)))
    out = _cli(str(runs), "--vs", "base")
    assert out.returncode == 0
    assert out.stderr == (
        f"warning: 'base' names 2 runs; comparing with the newest, {again.name} "
        "(not 20240101-100000_base); pass a folder name to choose\n"
    )
    assert_documented("ledger-baseline-choice", out.stderr)


def test_prune_lists_first_and_deletes_only_with_yes(runs):
    base, died = runs / "20240101-100000_base", runs / "20240104-100000_died"
    for run in (base, runs / "20240102-100000_lr"):
        (run / "last.pt").write_bytes(b"x" * 1000)
        (run / "best.pt").write_bytes(b"x")
    failed = write_run(runs, RunSpec("broke", "20240106-100000", status="failed"))
    smoke = write_run(runs, RunSpec("smoke", "20240107-100000", config={"smoke": True}))
    live = write_run(runs, RunSpec("live", "20240108-100000", config={"smoke": True}))
    status = {
        "status": "running",
        "epoch": 1,
        "updated": datetime.now(timezone.utc).isoformat(),
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }
    (live / "status.json").write_text(json.dumps(status))
    (live / "last.pt").write_bytes(b"x")
    before = sorted(p.relative_to(runs) for p in runs.rglob("*"))
    listed = _cli(str(runs), "--prune")
    assert listed.returncode == 0, listed.stderr
    assert sorted(p.relative_to(runs) for p in runs.rglob("*")) == before  # nothing deleted
    assert listed.stdout.splitlines()[0] == "4 to delete, 0.0 MB:"
    assert "pass --yes to delete" in listed.stdout and str(live) not in listed.stdout
    assert_documented("prune-needs-yes", listed.stdout)
    for item in (failed, smoke, base / "last.pt"):
        assert str(item) in listed.stdout
    done = _cli(str(runs), "--prune", "--yes")
    assert done.returncode == 0 and "deleted 4" in done.stdout
    assert not failed.exists() and not smoke.exists() and not (base / "last.pt").exists()
    assert (base / "best.pt").exists() and (live / "last.pt").exists() and died.exists()
    assert _cli(str(runs), "--prune").stdout == "nothing to prune\n"


def test_errors_are_one_line_and_debug_shows_the_traceback(runs):
    out = _cli(str(runs), "--sort", "nope")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert_documented("ledger-sort", out.stderr)
    # a traceback is what the interpreter prints when the error escapes: a real process
    command = [sys.executable, "-m", "kit.runs", str(runs), "--sort", "nope"]
    for debug in (
        _proc.run([*command, "--debug"], capture_output=True, text=True, cwd=ROOT, timeout=120),
        _proc.run(
            command,
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            env={**os.environ, "KIT_DEBUG": "1"},
        ),
    ):
        assert debug.returncode == 1 and "Traceback" in debug.stderr
        assert "cannot sort by 'nope'" in debug.stderr
