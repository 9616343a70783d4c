"""Per-task runs (mask / gender / age probabilities) merged into 18 classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kit.ensemble import ensemble
from kit.ensemble.inputs import merge_heads
from kit.labels import TASK_SIZES, decode, heads_from_joint, joint_from_heads
from kit.runfolder import TASK_COLUMNS, probs_task, read_task_val_probs, write_task_probs
from tests._runfolders import Preds, RunSpec, summary, write_run
from tests._triggers import assert_documented

N, N_TEST = 90, 12
IDS = [f"p{i // 3:03d}/img{i % 3}" for i in range(N)]
TEST_IDS = [f"{i:040x}.jpg" for i in range(N_TEST)]
TRUTH = np.arange(N) % 18


def _dirichlet(seed: int, n: int, k: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(k), n)


def _task_run(root: Path, task: str, seed: int, ids: list[str] = IDS) -> tuple[Path, dict]:
    """A per-task run folder written by the run-folder writer, and its probabilities."""
    k = TASK_SIZES[task]
    run = root / f"20240101-120000_{task}{seed}"
    run.mkdir(parents=True)
    val, test = _dirichlet(seed, N, k), _dirichlet(seed + 100, N_TEST, k)
    keys = pd.DataFrame(
        {"image_id": ids, "person_id": [i.split("/")[0] for i in ids], "label": TRUTH}
    ).assign(fold=[(i // 3) % 3 for i in range(N)])
    write_task_probs(run / "val_probs.csv", keys, val, task)
    write_task_probs(run / "test_probs.csv", pd.DataFrame({"image_id": TEST_IDS}), test, task)
    return run, {"val": val, "test": test}


def _joint_run(root: Path) -> tuple[Path, tuple[np.ndarray, np.ndarray]]:
    full = _dirichlet(5, N, 18), _dirichlet(6, N_TEST, 18)
    preds = Preds(IDS, TRUTH, full[0], TEST_IDS, full[1])
    return write_run(root, RunSpec(name="joint", summary=summary(0.5), preds=preds)), full


def test_task_files_hold_task_columns_and_read_back(tmp_path):
    run, probs = _task_run(tmp_path, "gender", 1)
    header = pd.read_csv(run / "val_probs.csv", nrows=0).columns.tolist()
    assert header == ["image_id", "person_id", "label", "fold", "gender0", "gender1"]
    assert probs_task(run / "val_probs.csv") == "gender" and TASK_COLUMNS["gender"] == header[4:]
    split = read_task_val_probs(run / "val_probs.csv", "gender")
    np.testing.assert_allclose(split.probs, probs["val"], rtol=1e-7)
    assert split.truth.tolist() == TRUTH.tolist()


def test_merging_mask_gender_age_runs_equals_joint_from_heads(tmp_path):
    runs = {t: _task_run(tmp_path, t, s) for s, t in enumerate(("age", "mask", "gender"))}
    result = ensemble([runs[t][0] for t in ("age", "mask", "gender")], "soft")
    want = joint_from_heads(*(runs[t][1]["test"] for t in ("mask", "gender", "age")))
    np.testing.assert_allclose(result.test_probs, want, rtol=1e-6)
    np.testing.assert_allclose(
        result.val_probs, joint_from_heads(*(runs[t][1]["val"] for t in ("mask", "gender", "age")))
    )
    assert result.val_macro_f1 is not None  # same validation people: out-of-fold score
    assert result.members[0].kind == "per-task"


def test_two_runs_of_a_task_are_averaged_and_18_way_runs_vote_beside_the_merge(tmp_path):
    m1, m2 = _task_run(tmp_path, "mask", 1), _task_run(tmp_path, "mask", 2)
    g, a = _task_run(tmp_path, "gender", 3), _task_run(tmp_path, "age", 4)
    full = _dirichlet(5, N, 18), _dirichlet(6, N_TEST, 18)
    run18 = write_run(
        tmp_path,
        RunSpec(
            name="joint", summary=summary(0.5), preds=Preds(IDS, TRUTH, full[0], TEST_IDS, full[1])
        ),
    )
    result = ensemble([m1[0], m2[0], g[0], a[0], run18], "soft")
    merged = joint_from_heads((m1[1]["test"] + m2[1]["test"]) / 2, g[1]["test"], a[1]["test"])
    np.testing.assert_allclose(result.test_probs, (merged + full[1]) / 2, rtol=1e-6)


def test_a_missing_task_is_filled_from_the_18_way_marginals(tmp_path):
    mask = _task_run(tmp_path, "mask", 1)
    full = _dirichlet(5, N, 18), _dirichlet(6, N_TEST, 18)
    run18 = write_run(
        tmp_path,
        RunSpec(
            name="joint", summary=summary(0.5), preds=Preds(IDS, TRUTH, full[0], TEST_IDS, full[1])
        ),
    )
    result = ensemble([mask[0], run18], "soft", weights=[1.0, 0.0])  # the merged member alone
    _, pg, pa = heads_from_joint(full[1])
    np.testing.assert_allclose(result.test_probs, joint_from_heads(mask[1]["test"], pg, pa))


def test_task_probabilities_of_the_wrong_width_are_refused_naming_the_task(tmp_path):
    with pytest.raises(ValueError, match=r"must have shape \(n, 2\)") as err:
        write_task_probs(tmp_path / "v.csv", pd.DataFrame(), np.ones((2, 3)), "gender")
    assert_documented("task-probs-shape", str(err.value))


def test_merging_heads_without_a_task_is_refused_naming_it():
    heads = {"mask": [np.full((2, 3), 1 / 3)], "gender": [np.ones((2, 2)) / 2]}
    with pytest.raises(ValueError, match="no age probabilities to merge") as err:
        merge_heads(heads)
    assert_documented("merge-heads-missing", str(err.value))


def test_per_task_runs_without_a_task_and_no_18_way_run_are_refused(tmp_path):
    runs = [_task_run(tmp_path, t, s)[0] for s, t in enumerate(("mask", "gender"))]
    with pytest.raises(ValueError, match="but no age probabilities; add a per-task age run") as err:
        ensemble(runs)
    assert_documented("tasks-missing", str(err.value))


def test_differing_validation_people_merge_test_but_warn(tmp_path):
    other = [f"q{i // 3:03d}/img{i % 3}" for i in range(N)]
    runs = [_task_run(tmp_path, "mask", 1)[0], _task_run(tmp_path, "gender", 2, other)[0]]
    runs.append(_task_run(tmp_path, "age", 3)[0])
    with pytest.warns(UserWarning, match="no out-of-fold score for the merge") as caught:
        result = ensemble(runs)
    assert_documented("tasks-no-oof", "\n".join(str(w.message) for w in caught))
    assert result.val_macro_f1 is None and result.test_labels is not None
    assert decode(result.test_labels)[0].max() <= 2


def test_score_of_a_per_task_run_reports_its_task_macro_f1(tmp_path, capsys):
    from sklearn.metrics import confusion_matrix, f1_score

    from kit.score import main as score_main

    run, probs = _task_run(tmp_path, "age", 3)
    assert score_main([str(run), "--png", str(tmp_path / "age.png")]) == 0
    out = capsys.readouterr().out
    truth, pred = decode(TRUTH)[2], probs["val"].argmax(1)
    expected = f1_score(truth, pred, labels=range(3), average="macro", zero_division=0)
    assert f"age macro F1  {expected:.4f}" in out  # the task's, not an 18-way macro F1
    assert "age only, validation" in out and ">=60" in out  # the task's values, named
    rows = out[out.index("true\\pred") :].splitlines()[1:4]  # one row per age group
    shown = np.array([[int(v) for v in row.split()[1:]] for row in rows])
    np.testing.assert_array_equal(shown, confusion_matrix(truth, pred, labels=range(3)))
    assert (tmp_path / "age.png").stat().st_size > 0


def test_score_mistakes_of_a_per_task_run_is_one_line_naming_suspects(tmp_path, capsys):
    from kit.score import main as score_main

    run, _ = _task_run(tmp_path, "mask", 1)
    assert score_main([str(run), "--mistakes"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert f"python -m kit.runs suspects {run}" in err
    assert score_main([str(_task_run(tmp_path, "age", 3)[0]), "--mistakes"]) == 2  # the page's
    assert_documented("score-mistakes-per-task", capsys.readouterr().err)


def test_suspects_of_a_per_task_run_rank_by_its_task(tmp_path, capsys):
    from kit.runs.__main__ import main as runs_main
    from kit.runs.suspects import find_suspects

    run, probs = _task_run(tmp_path, "gender", 2)
    table = find_suspects(run, top=5).table
    assert set(table["task"]) == {"gender"}
    # a person's p_own: the mean over their pictures of the probability of their own gender
    own = decode(TRUTH)[1]
    p_own = probs["val"][np.arange(N), own]
    people = pd.Series(p_own).groupby([i // 3 for i in range(N)]).mean().sort_values(kind="stable")
    assert table["person_id"].tolist() == [f"p{i:03d}" for i in people.index[:5]]
    np.testing.assert_allclose(table["p_own"], people.to_numpy()[:5])
    out = tmp_path / "review"
    assert runs_main(["suspects", str(run), "--top", "4", "--out", str(out)]) == 0
    listed = pd.read_csv(out / "suspects.csv")
    assert len(listed) == 4 and set(listed["task"]) == {"gender"}
