"""kit.ensemble: voting methods against hand-computed cases, inputs, weight search, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score

from kit.ensemble import (
    METHODS,
    combine,
    ensemble,
    geometric_mean,
    hard_vote,
    rank_average,
    search_weights,
    soft_vote,
    write,
)
from kit.ensemble.__main__ import main as ensemble_main
from kit.ensemble.search import _counts
from kit.io import OutputError
from kit.metrics import f1_from_confusion, macro_f1
from scripts.bench_search import members as bench_members  # the benchmark's own data
from tests import _proc
from tests._runfolders import Preds, RunSpec, one_hot_probs, summary, write_run, write_submission
from tests._triggers import assert_documented

ROOT = Path(__file__).resolve().parents[1]


def _pad(rows: list[list[float]]) -> np.ndarray:
    """3-class rows padded with zeros to 18 classes."""
    out = np.zeros((len(rows), 18))
    out[:, :3] = rows
    return out


A = _pad([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.1, 0.1, 0.8]])
B = _pad([[0.2, 0.7, 0.1], [0.4, 0.4, 0.2], [0.3, 0.3, 0.4]])


def _sk_f1(y, p) -> float:
    return f1_score(y, p, labels=range(18), average="macro", zero_division=0)


# ---- methods -------------------------------------------------------------------------------
def test_soft_vote_is_the_mean():
    out = soft_vote([A, B])
    np.testing.assert_allclose(out[:, :3], [[0.4, 0.5, 0.1], [0.3, 0.45, 0.25], [0.2, 0.2, 0.6]])
    assert combine("soft", [A, B])[1].tolist() == [1, 1, 2]


def test_weighted_vote_normalises_weights():
    out = soft_vote([A, B], [3, 1])  # 0.75 / 0.25
    np.testing.assert_allclose(
        out[:, :3], [[0.5, 0.4, 0.1], [0.25, 0.475, 0.275], [0.15, 0.15, 0.7]]
    )
    assert combine("weighted", [A, B], weights=[6, 2])[1].tolist() == [0, 1, 2]


def test_geometric_mean_clips_and_renormalises():
    out = geometric_mean([A, B])
    raw = np.array(
        [
            [np.sqrt(0.12), np.sqrt(0.21), 0.1],
            [np.sqrt(0.08), np.sqrt(0.20), np.sqrt(0.06)],
            [np.sqrt(0.03), np.sqrt(0.03), np.sqrt(0.32)],
        ]
    )
    # the 15 empty classes each keep the clip value 1e-12
    expected = raw / (raw.sum(1, keepdims=True) + 15e-12)
    np.testing.assert_allclose(out[:, :3], expected, rtol=1e-9)
    np.testing.assert_allclose(out.sum(1), 1.0)
    assert (out[:, 3:] > 0).all()


def test_rank_average_by_hand():
    # A ranks: c0 [1, .5, 0], c1 [.5, 1, 0], c2 [0, .5, 1]; B: c0 [0, 1, .5], c1 [1, .5, 0],
    # c2 [0, .5, 1]; the empty columns are all tied at rank .5.
    avg = np.array([[0.5, 0.75, 0.0], [0.75, 0.75, 0.5], [0.25, 0.0, 1.0]])
    out = rank_average([A, B])
    totals = avg.sum(1, keepdims=True) + 15 * 0.5
    np.testing.assert_allclose(out[:, :3], avg / totals)
    np.testing.assert_allclose(out[:, 3:], 0.5 / totals.repeat(15, 1))
    # row 1 is a tie between classes 0 and 1: the lowest class id wins
    assert combine("rank", [A, B])[1].tolist() == [1, 0, 2]


def test_argmax_ties_take_the_lowest_class():
    assert combine("soft", [B])[1].tolist() == [1, 0, 2]  # B row 1 is 0.4 / 0.4


def test_hard_vote_majority_and_ties():
    a, b, c = np.array([0, 1, 2]), np.array([1, 0, 2]), np.array([1, 5, 3])
    assert hard_vote([a, b, c]).tolist() == [1, 1, 2]  # majority; row 1 three-way: first member
    # two-way ties without probabilities: the first member's vote
    assert hard_vote([a, b]).tolist() == [0, 1, 2]
    assert hard_vote([b, a]).tolist() == [1, 0, 2]
    # with probabilities: summed probability decides (row 0: c1 1.0 > c0 0.8; row 1: c1 .9 > .6)
    assert hard_vote([a, b], probs=[A, B]).tolist() == [1, 1, 2]
    # weights: the heavier member wins a 1-1 split
    assert hard_vote([a, b], weights=[1, 2]).tolist() == [1, 0, 2]


def test_hard_vote_equal_probability_falls_back_to_member_order():
    even = _pad([[0.5, 0.5, 0.0]])
    assert hard_vote([np.array([1]), np.array([0])], probs=[even, even]).tolist() == [1]


def test_weighted_is_the_soft_vote_under_a_second_name():
    assert METHODS.get("weighted") is METHODS.get("soft")
    assert {"soft", "weighted", "geometric", "rank", "hard"} <= set(METHODS.names())
    w = [0.2, 0.8]
    soft, _ = combine("soft", [A, B], weights=w)
    weighted, _ = combine("weighted", [A, B], weights=w)
    np.testing.assert_array_equal(soft, weighted)
    np.testing.assert_allclose(soft, 0.2 * A + 0.8 * B)


def test_unknown_method_and_bad_weights():
    with pytest.raises(
        ValueError, match=r"unknown ensemble method 'avg'.*valid: \['geometric'"
    ) as err:
        combine("avg", [A])
    assert_documented("method-unknown", str(err.value))
    with pytest.raises(ValueError, match="2 weights for 1 members"):
        soft_vote([A], [1, 2])
    with pytest.raises(ValueError, match="1 weights for 2 members") as err:  # the page's example
        soft_vote([A, B], [1])
    assert_documented("weights-count", str(err.value))
    with pytest.raises(ValueError, match="non-negative") as err:
        soft_vote([A, B], [1, -1])
    assert_documented("weights-negative", str(err.value))


_probs = st.integers(1, 6).flatmap(
    lambda n: st.lists(
        st.lists(st.floats(0.01, 1.0), min_size=18, max_size=18), min_size=n, max_size=n
    ).map(lambda rows: np.array(rows) / np.array(rows).sum(1, keepdims=True))
)


@settings(max_examples=30, deadline=None)
@given(st.lists(_probs, min_size=1, max_size=4), st.randoms())
def test_soft_vote_ignores_member_order(members, rnd):
    n = min(len(m) for m in members)
    members = [m[:n] for m in members]
    shuffled = members[:]
    rnd.shuffle(shuffled)
    np.testing.assert_allclose(soft_vote(members), soft_vote(shuffled), rtol=1e-12)


@settings(max_examples=30, deadline=None)
@given(_probs)
def test_soft_vote_of_one_member_is_exact(p):
    assert np.array_equal(soft_vote([p]), p)


# ---- weight search -------------------------------------------------------------------------
def _complementary(n_per_class: int = 4, seed: int = 0):
    """A right on classes 0..8 (unsure elsewhere), B right on 9..17: each alone is half right."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(18), n_per_class)
    wrong = (y + 1 + rng.integers(0, 16, len(y))) % 18
    good, bad = one_hot_probs(y, 0.9), 0.5 * one_hot_probs(wrong, 0.6) + 0.5 * one_hot_probs(y, 0.3)
    a = np.where((y < 9)[:, None], good, bad)
    b = np.where((y >= 9)[:, None], good * 0.7 + bad * 0.3, bad)  # B is the weaker member
    return y, a, b


def test_search_strictly_improves_on_complementary_members():
    y, a, b = _complementary()
    found = search_weights([a, b], y)
    best_single = max(_sk_f1(y, a.argmax(1)), _sk_f1(y, b.argmax(1)))
    assert found.member_scores == pytest.approx([_sk_f1(y, a.argmax(1)), _sk_f1(y, b.argmax(1))])
    assert found.score > best_single + 0.1
    assert sum(found.weights) == pytest.approx(1) and min(found.weights) >= 0
    # the reported score is the F1 of the weighted vote with the returned weights
    mixed = found.weights[0] * a + found.weights[1] * b
    assert found.score == pytest.approx(_sk_f1(y, mixed.argmax(1)))
    assert search_weights([a, b], y, seed=0).weights == found.weights  # deterministic


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["weighted", "geometric", "hard"]))
def test_search_never_worse_than_the_best_member(seed, method):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 18, 40)
    members = [rng.dirichlet(np.ones(18), 40) for _ in range(3)]
    members[1][np.arange(40), y] += 0.3  # a better member, not first
    members[1] /= members[1].sum(1, keepdims=True)
    found = search_weights(members, y, method, restarts=1, rounds=2, fine_steps=10)
    assert found.score >= max(_sk_f1(y, m.argmax(1)) for m in members) - 1e-12


def _previous_search(probs, y, method, grid_steps=10, fine_steps=40, rounds=4, restarts=4):
    """The weight search kit shipped before the vectorised one (one weight vector per call,
    first strict gain kept), kept here as the reference the new search must match or beat."""
    cache = {}

    def f(w):
        w = np.asarray(w, float) / np.sum(w)
        key = tuple(np.round(w, 12))
        if key not in cache:
            cache[key] = macro_f1(y, combine(method, probs, weights=w)[1])
        return cache[key]

    def ascend(w, score, grid):
        for _ in range(rounds):
            improved = False
            for i in range(len(w)):
                for g in grid:
                    cand = w.copy()
                    cand[i] = g
                    if cand.sum() <= 0 or np.array_equal(cand, w):
                        continue
                    s = f(cand)
                    if s > score + 1e-12:
                        w, score, improved = cand / cand.max(), s, True
            if not improved:
                break
        return w, score

    m = len(probs)
    w0 = np.eye(m)[int(np.argmax([macro_f1(y, p.argmax(1)) for p in probs]))]
    if f(np.ones(m)) >= f(w0):
        w0 = np.ones(m)
    best_w, best = ascend(w0, f(w0), np.linspace(0, 1, grid_steps + 1))
    rng = np.random.default_rng(0)
    for _ in range(restarts):
        start = rng.dirichlet(np.ones(m))
        w, s = ascend(start / start.max(), f(start), np.linspace(0, 1, grid_steps + 1))
        if s > best + 1e-12:
            best_w, best = w, s
    return ascend(best_w, best, np.linspace(0, 1, fine_steps + 1))[1]


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("method", ["weighted", "geometric", "hard"])
def test_search_matches_or_beats_the_previous_algorithm(seed, method):
    members, y = bench_members(5, 300, seed)
    found = search_weights(members, y, method)
    assert found.score >= _previous_search(members, y, method) - 1e-12
    assert found.score >= _sk_f1(y, combine(method, members)[1]) - 1e-12  # equal weights
    assert found.score >= max(_sk_f1(y, p.argmax(1)) for p in members) - 1e-12
    # the reported score is the method's own at the returned weights
    voted = combine(method, members, weights=found.weights)[1]
    assert found.score == pytest.approx(_sk_f1(y, voted))


def test_search_objective_equals_macro_f1():
    rng = np.random.default_rng(1)
    y, preds = rng.integers(0, 18, 300), rng.integers(0, 18, (5, 300))
    preds[0] = y  # a perfect row
    preds[1, :] = 3  # one class only: the others count 0
    got = f1_from_confusion(_counts(y, preds)).mean(-1)
    assert got == pytest.approx([_sk_f1(y, p) for p in preds])


def test_search_refuses_rank_and_misaligned_members():
    y, a, b = _complementary()
    with pytest.raises(ValueError, match="not available for method 'rank'") as err:
        search_weights([a, b], y, "rank")
    assert_documented("search-rank", str(err.value))
    with pytest.raises(ValueError, match="same validation rows"):
        search_weights([a, b[:-1]], y)


# ---- run folders ---------------------------------------------------------------------------
VAL_IDS = [f"{i:06d}_female_Asian_45/mask{k}" for i in range(1, 19) for k in (1, 2)]
TEST_IDS = [f"{i:040x}" for i in range(1, 11)]


def _run(root: Path, name: str, val_probs, test_probs, y, stamp="20240101-120000") -> Path:
    preds = Preds(VAL_IDS, y, val_probs, TEST_IDS, test_probs)
    return write_run(root, RunSpec(name=name, stamp=stamp, summary=summary(0.5), preds=preds))


@pytest.fixture
def two_runs(tmp_path):
    y, a, b = _complementary(n_per_class=2)
    rng = np.random.default_rng(1)
    ta, tb = rng.dirichlet(np.ones(18), 10), rng.dirichlet(np.ones(18), 10)
    ra = _run(tmp_path / "runs", "a", a, ta, y)
    rb = _run(tmp_path / "runs", "b", b, tb, y, stamp="20240102-120000")
    return ra, rb, (y, a, b, ta, tb)


def test_ensemble_of_run_folders(two_runs):
    ra, rb, (y, a, b, ta, tb) = two_runs
    res = ensemble([ra, rb], "soft")
    assert res.test_ids.tolist() == TEST_IDS
    np.testing.assert_allclose(res.test_probs, (ta + tb) / 2, atol=1e-6)
    assert res.val_macro_f1 == pytest.approx(_sk_f1(y, ((a + b) / 2).argmax(1)))
    table = res.member_table()
    assert table["name"].tolist() == [ra.name, rb.name]
    assert table["val_macro_f1"].tolist() == pytest.approx(
        [_sk_f1(y, a.argmax(1)), _sk_f1(y, b.argmax(1))]
    )
    auto = ensemble([ra, rb], "soft", "auto")
    assert auto.val_macro_f1 >= max(table["val_macro_f1"]) and auto.search is not None


def test_shuffled_rows_are_realigned(two_runs, tmp_path):
    ra, rb, _ = two_runs
    for f in ("val_probs.csv", "test_probs.csv"):
        df = pd.read_csv(rb / f, dtype={"image_id": str})
        df.sample(frac=1, random_state=3).to_csv(rb / f, index=False)
    shuffled, straight = ensemble([ra, rb]), ensemble([ra, _copy_sorted(rb, tmp_path)])
    assert shuffled.test_ids.tolist() == TEST_IDS
    np.testing.assert_allclose(shuffled.test_probs, straight.test_probs)
    np.testing.assert_allclose(shuffled.val_probs, straight.val_probs)


def _copy_sorted(run: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "sorted" / run.name
    dst.mkdir(parents=True)
    for f in run.iterdir():
        dst.joinpath(f.name).write_bytes(f.read_bytes())
    for f, ids in (("val_probs.csv", VAL_IDS), ("test_probs.csv", TEST_IDS)):
        df = pd.read_csv(dst / f, dtype={"image_id": str}).set_index("image_id").loc[ids]
        df.reset_index().to_csv(dst / f, index=False)
    return dst


def test_members_with_different_rows_are_refused(two_runs, capsys):
    ra, rb, (_, _, _, ta, tb) = two_runs
    df = pd.read_csv(rb / "val_probs.csv", dtype={"image_id": str})
    df.loc[5, "image_id"] = "999999_male_Asian_20/mask1"
    df.to_csv(rb / "val_probs.csv", index=False)
    # different validation rows: no weight search ...
    with pytest.raises(ValueError, match=r"cannot search weights.*1 only in.*'999999_male") as err:
        ensemble([ra, rb], weights="auto")
    assert_documented("search-impossible", str(err.value))
    # ... and no validation score, but the test vote still goes ahead
    res = ensemble([ra, rb], "soft")
    assert res.val_macro_f1 is None and "validation rows differ" in res.val_note
    np.testing.assert_allclose(res.test_probs, (ta + tb) / 2, atol=1e-6)
    proc = _ens(capsys, str(ra), str(rb))  # the command says why its table has no score
    assert proc.returncode == 0, proc.stderr
    assert "no ensemble validation score: validation rows differ" in proc.stdout
    assert_documented("no-val-score", proc.stdout)
    # different test rows: refused outright
    df = pd.read_csv(rb / "test_probs.csv", dtype={"image_id": str})
    df.iloc[:-2].to_csv(rb / "test_probs.csv", index=False)
    with pytest.raises(
        ValueError, match=r"test rows differ.*\(10 rows\).*\(8 rows\): 2 only in"
    ) as err:
        ensemble([ra, rb])
    assert_documented("rows-differ", str(err.value))


def test_csv_members_join_the_hard_vote_only(two_runs, tmp_path):
    ra, rb, (_, _, _, ta, tb) = two_runs
    sub = write_submission(tmp_path / "x" / "submission.csv", TEST_IDS[::-1], np.zeros(10))
    with pytest.raises(ValueError, match="submission CSVs.*--method hard") as err:
        ensemble([ra, sub], "soft")
    assert_documented("needs-probs", str(err.value))
    res = ensemble([ra, rb, sub], "hard")
    votes = np.stack([ta.argmax(1), tb.argmax(1), np.zeros(10, int)])
    for row, pred in enumerate(res.test_labels):
        counts = np.bincount(votes[:, row], minlength=18)
        assert counts[pred] == counts.max()
        if counts.max() == 1:  # three different votes: the first member's
            assert pred == votes[0, row]
    assert res.val_macro_f1 is None and res.test_probs is None


def test_a_member_without_test_predictions_is_refused_when_others_have_them(two_runs):
    ra, rb, _ = two_runs
    (rb / "test_probs.csv").unlink()
    with pytest.raises(ValueError, match=rf"\['{rb.name}'\] have no test predictions") as err:
        ensemble([ra, rb])
    assert_documented("no-test-for-some", str(err.value))


def test_an_ensemble_without_test_predictions_is_scored_but_writes_no_submission(
    two_runs, tmp_path
):
    ra, rb, _ = two_runs
    for run in (ra, rb):
        (run / "test_probs.csv").unlink()
    res = ensemble([ra, rb])
    assert res.test_labels is None and res.val_macro_f1 is not None
    out = tmp_path / "out" / "ens.csv"
    with pytest.raises(ValueError, match=r"has no test predictions \(no member has") as err:
        write(res, out)
    assert_documented("nothing-to-write", str(err.value))
    assert not out.exists() and not out.with_suffix(".json").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda df: df.drop(columns="p7"), r"missing column\(s\) \['p7'\]"),
        (lambda df: df.assign(p3=df.p3.where(df.index != 4)), r"line 6, field p3: found ''"),
        (
            lambda df: df.assign(p0=df.p0 + np.where(df.index == 0, 0.05, 0)),
            r"line 2, fields p0..p17: sum to 1.05",
        ),
        (lambda df: df.assign(label=df.label.where(df.index != 2, 18)), r"line 4, field label"),
        (lambda df: df.iloc[:-1], r"35 rows but .*n_val = 36"),
    ],
)
def test_bad_files_are_named(two_runs, edit, message):
    ra, _, _ = two_runs
    df = pd.read_csv(ra / "val_probs.csv", dtype={"image_id": str, "person_id": str})
    edit(df).to_csv(ra / "val_probs.csv", index=False)
    with pytest.raises(ValueError, match=message) as err:
        ensemble([ra])
    assert "val_probs.csv" in str(err.value)
    if "p7" in message:
        assert_documented("probs-column-missing", str(err.value))
    if "sum to" in message:
        assert_documented("probs-not-summing", str(err.value))
    if "n_val" in message:
        assert_documented("n-val-mismatch", str(err.value))


def test_info_csv_sets_the_row_order(two_runs, tmp_path):
    ra, rb, (_, _, _, ta, tb) = two_runs
    info = write_submission(tmp_path / "eval" / "info.csv", TEST_IDS[::-1], np.zeros(10))
    res = ensemble([ra, rb], info=info)
    assert res.test_ids.tolist() == TEST_IDS[::-1]
    np.testing.assert_allclose(res.test_probs, ((ta + tb) / 2)[::-1], atol=1e-6)
    write_submission(info, TEST_IDS[:9], np.zeros(9))
    with pytest.raises(ValueError, match=r"info.csv \(9 rows\)"):
        ensemble([ra, rb], info=info)


def test_write_and_record(two_runs, tmp_path):
    ra, rb, _ = two_runs
    res = ensemble([ra, rb], "geometric", [2, 1])
    sub, record = write(res, tmp_path / "out" / "ens.csv")
    df = pd.read_csv(sub, dtype={"ImageID": str})
    assert df.columns.tolist() == ["ImageID", "ans"] and df.ImageID.tolist() == TEST_IDS
    assert df.ans.tolist() == res.test_labels.tolist()
    rec = json.loads(record.read_text())
    assert rec["method"] == "geometric" and rec["weights"] == pytest.approx([2 / 3, 1 / 3])


def test_cli_end_to_end(two_runs, tmp_path):
    ra, rb, (y, a, _b, ta, tb) = two_runs
    out = tmp_path / "sub" / "submission.csv"
    cmd = [sys.executable, "-m", "kit.ensemble", str(ra), str(rb), "-o", str(out)]
    proc = _proc.run(
        [*cmd, "--method", "soft", "--weights", "auto"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert ra.name in proc.stdout and rb.name in proc.stdout and "ensemble (soft)" in proc.stdout
    assert f"{_sk_f1(y, a.argmax(1)):.4f}" in proc.stdout
    rec = json.loads(out.with_suffix(".json").read_text())
    assert [m["name"] for m in rec["members"]] == [ra.name, rb.name] and rec["created"]
    assert rec["scores"]["val"]["macro_f1"] >= rec["scores"]["best_member_val_macro_f1"]
    w = rec["weights"]
    expected = (w[0] * ta + w[1] * tb).argmax(1)
    assert pd.read_csv(out).ans.tolist() == expected.tolist()
    bad = _proc.run(
        [*cmd, "--method", "rank", "--weights", "auto"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert bad.returncode == 2 and "not available for method 'rank'" in bad.stderr


# ---- the record's name, the output hint, one-line errors (issue #15) --------------------------


def _ens(capsys, *args: str) -> subprocess.CompletedProcess:
    """``python -m kit.ensemble ARGS`` run in this process (its main is what the command runs;
    test_cli_end_to_end keeps a real process): exit code, stdout, stderr."""
    code = ensemble_main(list(args))
    seen = capsys.readouterr()
    return subprocess.CompletedProcess(["kit.ensemble", *args], code, seen.out, seen.err)


@pytest.mark.parametrize("name", ["out.json", "OUT.JSON"])
def test_an_output_named_like_its_record_is_refused_before_anything_is_written(
    two_runs, tmp_path, name, capsys
):
    ra, rb, _ = two_runs
    out = tmp_path / "subs" / name
    out.parent.mkdir()
    out.write_text("the user's own file\n")
    proc = _ens(capsys, str(ra), str(rb), "-o", str(out))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"error: {out}: the ensemble's record is written beside")
    assert "-o " + str(out.with_suffix(".csv")) in proc.stderr
    assert_documented("output-json-collision", proc.stderr)
    assert out.read_text() == "the user's own file\n" and sorted(out.parent.iterdir()) == [out]
    with pytest.raises(ValueError, match="would be overwritten by it"):
        write(ensemble([ra, rb]), out)
    assert out.read_text() == "the user's own file\n"


def test_weights_that_are_not_numbers_are_refused_by_the_commands_parser(two_runs, capsys):
    ra, _, _ = two_runs
    with pytest.raises(SystemExit) as info:
        ensemble_main([str(ra), "--weights", "half,half"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "got 'half,half'" in err and "Traceback" not in err
    assert_documented("weights-cli", err)


def test_an_unwritable_output_names_this_commands_flag(two_runs, tmp_path, capsys):
    ra, rb, _ = two_runs
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = _ens(capsys, str(ra), str(rb), "-o", str(blocker / "sub.csv"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "a file is in the way" in proc.stderr and "pass another -o PATH" in proc.stderr
    assert_documented("ensemble-output-unwritable", proc.stderr)
    assert "--output-dir" not in proc.stderr
    # --debug lets the error out (a process prints its traceback; tests/test_runs.py checks
    # that on a real process, through the same kit.cli.run_cli)
    with pytest.raises(OutputError, match="a file is in the way"):
        ensemble_main([str(ra), str(rb), "-o", str(blocker / "sub.csv"), "--debug"])


def test_a_warning_is_one_line(two_runs, capsys):
    ra, rb, (y, *_rest) = two_runs
    df = pd.read_csv(rb / "val_probs.csv", dtype={"image_id": str, "person_id": str})
    df.assign(label=(df.label + 1) % 18).to_csv(rb / "val_probs.csv", index=False)
    proc = _ens(capsys, str(ra), str(rb))
    assert proc.returncode == 0, proc.stderr
    assert (
        proc.stderr == f"warning: {rb.name}: {len(y)} validation labels differ from {ra.name} "
        "(label fixes?); scoring against the first member's labels\n"
    )
    # the page's example: 8 of the labels fixed
    df.assign(label=df.label.where(df.index >= 8, (df.label + 1) % 18)).to_csv(
        rb / "val_probs.csv", index=False
    )
    proc = _ens(capsys, str(ra), str(rb))
    assert proc.returncode == 0 and proc.stderr.count("\n") == 1, proc.stderr
    assert_documented("labels-differ", proc.stderr)
