"""The ledger's repeats and noise over hand-made run folders: runs of one config over seeds are
one row (mean ± sd, n), a run is paired with the baseline run of its own seed and split, groups
are compared with groups, and the verdict column finds a planted difference."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from kit.labels import NUM_CLASSES
from kit.metrics import macro_f1
from kit.runs import load, table
from kit.runs.__main__ import main as runs_main
from tests._runfolders import Preds, RunSpec, one_hot_probs, summary, write_run

NOW = datetime(2024, 1, 10, 12, 0, tzinfo=timezone.utc)
PEOPLE, PICTURES = 90, 7


def _truth() -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(0)
    ids = [f"p{p:03d}/{k}" for p in range(PEOPLE) for k in range(PICTURES)]
    return ids, rng.integers(0, NUM_CLASSES, len(ids))


def _labels(truth: np.ndarray, right: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(truth)) >= right
    return np.where(wrong, (truth + rng.integers(1, NUM_CLASSES, len(truth))) % NUM_CLASSES, truth)


def _run(root: Path, name: str, stamp: str, seed: int, labels=None, f1=None, **config) -> Path:
    """A complete run of ``seed``; with ``labels`` its val_probs.csv predicts them (and its
    summary's F1 is theirs)."""
    ids, truth = _truth()
    preds = None
    if labels is not None:
        preds = Preds(ids, truth, one_hot_probs(labels))
        f1 = macro_f1(truth, labels)
    spec = RunSpec(name, stamp, config={"seed": seed, **config}, summary=summary(f1), preds=preds)
    return write_run(root, spec)


def _rows(shown, column="name"):
    return shown.set_index(column)


def test_runs_of_one_config_over_seeds_are_one_row_with_mean_sd_and_n(tmp_path):
    root = tmp_path / "runs"
    parent = root / "20240101-090000_base_seeds"
    for k, (seed, f1) in enumerate([(42, 0.60), (43, 0.62), (44, 0.64)]):
        _run(parent, f"base_s{seed}", f"20240101-10000{k}", seed, f1=f1, split_seed=42)
    for k, (seed, f1) in enumerate([(42, 0.70), (43, 0.70), (44, 0.76)]):
        _run(root, f"lr_s{seed}", f"20240102-10000{k}", seed, f1=f1, lr=0.001, split_seed=42)
    _run(root, "lr_again", "20240103-100000", 43, f1=0.5, lr=0.001, split_seed=42)  # newer
    df = load(root, now=NOW)
    assert len(df) == 7 and set(df.loc[df["parent"].notna(), "parent"]) == {parent.name}
    shown = table(df, all_fields=True).set_index("name")
    assert len(shown) == 2
    base = shown.loc[parent.name]  # the --seeds parent names its group
    assert (base["n"], base["seed"]) == (3, "42,43,44")
    assert base["val_macro_f1"] == pytest.approx(0.62)
    assert base["f1_sd"] == pytest.approx(0.02)
    # a seed trained twice counts once, the newest: lr_again (0.5) stands for seed 43
    (lr,) = [name for name in shown.index if name != parent.name]
    assert lr == "20240103-100000_lr_again (+2 seeds)" and shown.loc[lr, "n"] == 3
    assert shown.loc[lr, "val_macro_f1"] == pytest.approx(np.mean([0.70, 0.5, 0.76]))
    # the group's row name, copied from the table, names it as a baseline
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert runs_main([str(root), "--vs", lr, "--csv"]) == 0
    shown_vs = pd.read_csv(io.StringIO(out.getvalue())).set_index("name")
    assert shown_vs.loc[lr, "flag"] == "baseline"
    assert shown_vs.loc[parent.name, "changes"] == "lr: 0.001 -> 0.003"
    # --each-seed: one row per run again
    assert len(table(df, group=False)) == 7


def test_groups_are_compared_with_groups_seed_by_seed(tmp_path):
    root = tmp_path / "runs"
    for k, (seed, f1) in enumerate([(1, 0.60), (2, 0.62), (3, 0.64)]):
        _run(
            root / "20240101-000000_base_seeds", f"base_s{seed}", f"20240101-10000{k}", seed, f1=f1
        )
    for k, (seed, f1) in enumerate([(1, 0.70), (2, 0.70), (3, 0.76)]):
        _run(
            root / "20240102-000000_lr_seeds",
            f"lr_s{seed}",
            f"20240102-10000{k}",
            seed,
            f1=f1,
            lr=0.001,
        )
    for k, (seed, f1) in enumerate([(1, 0.61), (2, 0.66), (3, 0.60)]):
        _run(
            root / "20240103-000000_wd_seeds",
            f"wd_s{seed}",
            f"20240103-10000{k}",
            seed,
            f1=f1,
            weight_decay=0.1,
        )
    shown = table(load(root, now=NOW), vs="20240101-000000_base_seeds").set_index("name")
    assert shown.loc["20240101-000000_base_seeds", "flag"] == "baseline"
    lr = shown.loc["20240102-000000_lr_seeds"]
    assert (lr["changes"], lr["flag"]) == ("lr: 0.003 -> 0.001", "")
    low, high = stats.ttest_rel([0.70, 0.70, 0.76], [0.60, 0.62, 0.64]).confidence_interval()
    assert lr["interval"] == f"+0.1000 [{low:+.4f}, {high:+.4f}]"
    se = np.std([0.10, 0.08, 0.12], ddof=1) / np.sqrt(3)  # of the seed-by-seed differences
    assert (lr["verdict"], lr["noise"]) == ("beyond noise", f"seeds 3 vs 3, paired, se {se:.4f}")
    wd = shown.loc["20240103-000000_wd_seeds"]
    assert wd["verdict"] == "within noise" and wd["interval"].startswith("+0.0033 [-")


def test_a_seed_1_repeat_is_paired_with_the_seed_1_baseline(tmp_path):
    root = tmp_path / "runs"
    _, truth = _truth()
    _run(root, "base", "20240101-100000", 0, labels=_labels(truth, 0.5, 0))
    _run(root, "base", "20240101-110000", 1, labels=_labels(truth, 0.5, 1))
    # the one-field change trained with seed 1 only (an incomplete run stays out of groups)
    _run(root, "lr", "20240102-100000", 1, labels=_labels(truth, 0.5, 2), lr=0.001)
    df = load(root, now=NOW)
    shown = table(df, vs="20240101-100000_base").set_index("name")
    lr = shown.loc["20240102-100000_lr"]
    assert (lr["changes"], lr["flag"]) == ("lr: 0.003 -> 0.001", "")
    assert lr["pair"] == "20240101-110000_base"
    assert lr["verdict"] == "within noise" and lr["noise"] == f"bootstrap over {PEOPLE} people"
    # one row per run: the seed-0 baseline against its seed-1 run names both seeds changed
    each = table(df, vs="20240101-100000_base", group=False).set_index("name")
    assert each.loc["20240101-110000_base", "changes"] == "seed: 0 -> 1; split_seed: 0 -> 1"
    assert each.loc["20240101-110000_base", "flag"] == "UNCONTROLLED (2 changes)"
    assert each.loc["20240102-100000_lr", "pair"] == "20240101-110000_base"
    # without a seed-1 baseline the run is compared with seed 0, and flagged so
    (root / "20240101-110000_base" / "summary.json").unlink()
    (root / "20240101-110000_base" / "status.json").write_text('{"status": "failed"}')
    lone = table(load(root, now=NOW), vs="20240101-100000_base").set_index("name")
    assert lone.loc["20240102-100000_lr", "flag"] == "UNCONTROLLED (3 changes)"
    assert lone.loc["20240102-100000_lr", "pair"] == "20240101-100000_base"


def test_the_verdict_finds_a_planted_gain_and_markdown_carries_it(tmp_path):
    root = tmp_path / "runs"
    ids, truth = _truth()
    base = _labels(truth, 0.5, 0)
    people = np.array([i.split("/")[0] for i in ids])
    # right on every picture of a fifth of the people
    better = np.where(np.isin(people, [f"p{p:03d}" for p in range(0, PEOPLE, 5)]), truth, base)
    _run(root, "base", "20240101-100000", 0, labels=base)
    _run(root, "better", "20240102-100000", 0, labels=better, lr=0.001)
    _run(root, "same", "20240103-100000", 0, labels=_labels(truth, 0.5, 7), lr=0.002)
    shown = table(load(root, now=NOW), vs="base").set_index("name")
    gain = macro_f1(truth, better) - macro_f1(truth, base)
    row = shown.loc["20240102-100000_better"]
    assert row["verdict"] == "beyond noise" and row["interval"].startswith(f"{gain:+.4f} [+")
    assert shown.loc["20240103-100000_same", "verdict"] == "within noise"
    # other validation people, or no val_probs.csv: no bootstrap
    shifted = Preds([f"q{i}" for i in ids], truth, one_hot_probs(better))
    write_run(
        root, RunSpec("moved", "20240104-100000", {"lr": 0.5}, summary=summary(0.5), preds=shifted)
    )
    _run(root, "bare", "20240105-100000", 0, f1=0.9, lr=0.1)
    shown = table(load(root, now=NOW), vs="base").set_index("name")
    moved, bare = shown.loc["20240104-100000_moved"], shown.loc["20240105-100000_bare"]
    assert (moved["verdict"], moved["interval"]) == ("n/a", "-")
    assert moved["noise"] == "other validation pictures (another split)"
    assert (bare["verdict"], bare["noise"]) == ("n/a", "no readable 18-class val_probs.csv")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert runs_main([str(root), "--vs", "base", "--markdown"]) == 0
    header = out.getvalue().splitlines()[0]
    assert "| verdict |" in header and "| interval |" in header
    assert "| beyond noise |" in out.getvalue() and "| n/a |" in out.getvalue()
    assert "verdict" not in table(load(root, now=NOW)).columns  # only with --vs


def test_cli_vs_a_seeds_folder_by_path_and_each_seed(tmp_path):
    root = tmp_path / "runs"
    for k, seed in enumerate((1, 2)):
        _run(
            root / "20240101-000000_base_seeds",
            f"base_s{seed}",
            f"20240101-10000{k}",
            seed,
            f1=0.6 + k / 100,
        )
        _run(
            root / "20240102-000000_lr_seeds",
            f"lr_s{seed}",
            f"20240102-10000{k}",
            seed,
            f1=0.7 + k / 100,
            lr=0.01,
        )

    def cli(*args: str) -> str:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert runs_main([str(root), "--width", "0", *args]) == 0
        return out.getvalue()

    grouped = cli("--vs", str(root / "20240101-000000_base_seeds"), "--name", "lr")
    lines = grouped.splitlines()
    assert len(lines) == 4 and "baseline" in lines[2]  # header, rule, the baseline, lr
    assert "seeds 2 vs 2, paired" in lines[3]
    assert len(cli("--each-seed").splitlines()) == 6
    # 120 characters: the per-head scores go before the spread and the verdict
    narrow = cli("--vs", "20240101-000000_base_seeds", "--width", "120").splitlines()
    assert max(map(len, narrow)) <= 120
    assert {"f1_sd", "n", "verdict"} <= set(narrow[0].split()), narrow
    assert "mask" not in narrow[0].split()


def test_k_fold_parents_are_compared_over_every_persons_out_of_fold_prediction(tmp_path):
    root = tmp_path / "runs"
    ids, truth = _truth()
    folds = [int(i[1:4]) % 2 for i in ids]  # two folds of people: every person once
    for stamp, name, right, lr in (
        ("20240101", "cv", 0.5, 0.003),
        ("20240102", "cv_lr", 0.8, 0.01),
    ):
        labels = _labels(truth, right, 1)
        preds = Preds(ids, truth, one_hot_probs(labels), folds=folds)
        parent = write_run(
            root,
            RunSpec(
                name,
                f"{stamp}-100000",
                {"fold": None, "folds": "all", "lr": lr},
                summary=summary(macro_f1(truth, labels)),
                preds=preds,
            ),
        )
        fold_dirs = [
            write_run(
                parent,
                RunSpec(
                    f"{name}_fold{k}",
                    f"{stamp}-11000{k}",
                    {"fold": k, "lr": lr},
                    summary=summary(0.5),
                ),
            )
            for k in range(2)
        ]
        body = json.loads((parent / "summary.json").read_text())
        body["folds"] = [
            {"fold": k, "run_dir": d.name, "val_macro_f1": 0.5} for k, d in enumerate(fold_dirs)
        ]
        (parent / "summary.json").write_text(json.dumps(body))
    shown = table(load(root, now=NOW), vs="20240101-100000_cv").set_index("name")
    row = shown.loc["20240102-100000_cv_lr"]
    assert row["noise"] == f"bootstrap over {PEOPLE} people" and row["verdict"] == "beyond noise"
    assert len(shown) == 6  # fold runs are never grouped over seeds
