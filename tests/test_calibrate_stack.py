"""Calibration for macro F1 and stacking, against independent references (scikit-learn's
F1, brute-force search, hand-made run folders)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import f1_score

from kit.ensemble import (
    apply_biases,
    calibrate,
    combine,
    ensemble,
    fit_biases,
    fit_stacker,
    predict_with_biases,
)
from kit.ensemble.__main__ import main as ensemble_main
from kit.ensemble.search import GRID, _best_for_class, _logs, cross_validate
from tests._runfolders import Preds, RunSpec, summary, write_run
from tests._triggers import assert_documented


def _sk_f1(y, p) -> float:
    return f1_score(y, p, labels=range(18), average="macro", zero_division=0)


def _skewed(seed: int, n: int = 600, signal: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities biased towards common classes, as a model trained on imbalanced data."""
    rng = np.random.default_rng(seed)
    prior = rng.dirichlet(np.full(18, 0.7))
    y = rng.choice(18, n, p=prior)
    logits = rng.normal(size=(n, 18)) + signal * np.eye(18)[y] + 1.5 * np.log(prior)
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True), y


@pytest.mark.parametrize("seed", range(6))
def test_calibration_never_lowers_in_sample_f1_and_its_biases_reproduce_it(seed):
    p, y = _skewed(seed)
    b = fit_biases(p, y)
    before, after = _sk_f1(y, p.argmax(1)), _sk_f1(y, (np.log(p) + b).argmax(1))
    assert after >= before
    assert predict_with_biases(p, b).tolist() == (np.log(p) + b).argmax(1).tolist()
    cal = calibrate(p, y, groups=np.arange(len(y)) // 4)
    assert cal.f1_before == pytest.approx(before) and cal.f1_after == pytest.approx(after)
    calibrated = apply_biases(p, cal.biases)
    np.testing.assert_allclose(calibrated.sum(1), 1.0)
    assert calibrated.argmax(1).tolist() == cal.predict(p).tolist()


def test_calibration_gains_on_skewed_probabilities():
    p, y = _skewed(0, n=3000)
    cal = calibrate(p, y, groups=np.arange(len(y)) // 4)
    assert cal.f1_after > cal.f1_before + 0.03
    assert cal.f1_honest > cal.f1_before  # the gain survives on rows it was not fitted on


@pytest.mark.parametrize("c", [0, 7, 17])
def test_one_class_search_equals_brute_force(c):
    p, y = _skewed(3, n=400)
    b = np.random.default_rng(c).normal(scale=0.3, size=18)
    value, score = _best_for_class(_logs(p), y, b.copy(), c, GRID)
    brute = []
    for g in GRID:
        trial = b.copy()
        trial[c] = g
        brute.append(_sk_f1(y, (np.log(p) + trial).argmax(1)))
    assert score == pytest.approx(max(brute))
    assert value == GRID[int(np.argmax(brute))]


def test_honest_estimate_uses_only_rows_outside_the_fold():
    p, y = _skewed(1, n=900)
    folds = np.arange(len(y)) % 3
    pred, used = cross_validate(p, y, folds)
    # Scrambling fold 0's rows must not change the biases that predicted fold 0 ...
    p2 = p.copy()
    p2[folds == 0] = np.random.default_rng(9).dirichlet(np.ones(18), (folds == 0).sum())
    pred2, used2 = cross_validate(p2, y, folds)
    np.testing.assert_array_equal(used[0], used2[0])
    assert pred2[folds == 0].tolist() == predict_with_biases(p2[folds == 0], used[0]).tolist()
    # ... while the other folds' biases, fitted on fold 0 among others, do see it.
    assert not (np.array_equal(used[1], used2[1]) and np.array_equal(used[2], used2[2]))
    np.testing.assert_array_equal(pred[folds == 1], predict_with_biases(p[folds == 1], used[1]))


def test_honest_estimate_of_noise_is_below_the_in_sample_one():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 18, 500)
    p = rng.dirichlet(np.ones(18), 500)  # knows nothing: any in-sample gain is overfitting
    cal = calibrate(p, y, groups=np.arange(500) // 5)
    assert cal.f1_after > cal.f1_before
    assert cal.f1_honest < cal.f1_after


def _kfold_run(root: Path, name: str, probs, y, test_probs, seed: int = 0) -> Path:
    n = len(y)
    ids = [f"p{i // 5:03d}/img{i % 5}" for i in range(n)]
    preds = Preds(
        ids,
        y,
        probs,
        [f"{i:040x}.jpg" for i in range(len(test_probs))],
        test_probs,
        folds=[(i // 5) % 3 for i in range(n)],
    )
    return write_run(root, RunSpec(name=name, summary=summary(0.5), preds=preds))


def test_cli_calibrate_writes_biases_and_applies_them_to_test(tmp_path, capsys):
    p, y = _skewed(4, n=600)
    test_p, _ = _skewed(5, n=200)
    run = _kfold_run(tmp_path, "a", p, y, test_p)
    out = tmp_path / "subs" / "cal.csv"
    assert ensemble_main([str(run), "--calibrate", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "in-sample" in printed and "honest (3 folds by fold column)" in printed
    biases = json.loads((tmp_path / "subs" / "cal_biases.json").read_text())
    sub = pd.read_csv(out)
    expected = predict_with_biases(test_p, biases["biases"])
    assert sub["ans"].tolist() == expected.tolist()
    record = json.loads(out.with_suffix(".json").read_text())
    assert record["calibration"]["biases"] == biases["biases"]
    assert biases["val_macro_f1_after_in_sample"] >= biases["val_macro_f1_before"]


def test_calibrate_refuses_the_hard_vote(tmp_path, capsys):
    p, y = _skewed(4, n=60)
    run = _kfold_run(tmp_path, "a", p, y, p[:10])
    assert ensemble_main([str(run), "--method", "hard", "--calibrate"]) == 2
    err = capsys.readouterr().err
    assert "cannot calibrate" in err
    assert_documented("calibrate-no-probs", err)


# ---- stacking -------------------------------------------------------------------------------
def _permuted(y: np.ndarray, perm: np.ndarray, seed: int) -> np.ndarray:
    """Confident probabilities of class perm[y]: wrong for soft voting, separable for a stack."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=0.3, size=(len(y), 18)) + 5 * np.eye(18)[perm[y]]
    p = np.exp(logits)
    return p / p.sum(1, keepdims=True)


def test_stacking_separable_members_reach_f1_one(tmp_path):
    y = np.arange(540) % 18
    perm = np.roll(np.arange(18), 5)
    a = _kfold_run(tmp_path, "a", _permuted(y, perm, 0), y, _permuted(y[:36], perm, 1))
    b = _kfold_run(tmp_path, "b", _permuted(y, perm[::-1], 2), y, _permuted(y[:36], perm[::-1], 3))
    soft = ensemble([a, b], "soft")
    stacked = ensemble([a, b], "stack")
    assert soft.val_macro_f1 < 0.2
    assert stacked.val_macro_f1 == 1.0  # honest: every fold predicted by a model without it
    assert stacked.test_labels.tolist() == y[:36].tolist()
    assert stacked.fitted == {"val_scores": "out-of-fold", "folds": 3, "folds_from": "fold column"}


def test_stacking_honest_folds_never_see_their_rows():
    y = np.arange(360) % 18
    p = _permuted(y, np.arange(18), 0)
    folds = np.arange(360) % 4
    base = fit_stacker([p], y, folds).oof
    y2 = y.copy()
    y2[folds == 0] = (y2[folds == 0] + 1) % 18  # other labels in fold 0 only
    changed = fit_stacker([p], y2, folds).oof
    np.testing.assert_allclose(base[folds == 0], changed[folds == 0])
    assert not np.allclose(base[folds == 1], changed[folds == 1])


def test_stacking_solves_on_one_blas_thread_and_gives_the_rest_back(monkeypatch):
    """Two BLAS threads contending with other work made stacking 5x slower on shared cores."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from kit.ensemble import methods

    seen = []
    fit = methods._fit

    def spy(*args, **kwargs):
        seen.append(max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"))
        return fit(*args, **kwargs)

    monkeypatch.setattr(methods, "_fit", spy)
    y = np.arange(180) % 18
    with threadpool_limits(2, user_api="blas"):
        fit_stacker([_permuted(y, np.arange(18), 0)], y, np.arange(180) % 3)
        after = max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas")
    assert seen == [1, 1, 1, 1]  # three folds and the final fit
    assert after == 2


def test_stacking_refuses_members_with_different_validation_rows(tmp_path):
    y = np.arange(90) % 18
    a = _kfold_run(tmp_path, "a", _permuted(y, np.arange(18), 0), y, np.full((6, 18), 1 / 18))
    b = write_run(
        tmp_path,
        RunSpec(
            name="b",
            summary=summary(0.5),
            preds=Preds(
                [f"q{i}/m" for i in range(90)],
                y,
                _permuted(y, np.arange(18), 1),
                [f"{i:040x}.jpg" for i in range(6)],
                np.full((6, 18), 1 / 18),
            ),
        ),
    )
    with pytest.raises(
        ValueError, match="method 'stack' fits a meta-model on validation rows"
    ) as err:
        ensemble([a, b], "stack")
    assert_documented("stack-rows-differ", str(err.value))
    with pytest.raises(ValueError, match="leave --weights out") as err:
        ensemble([a], "stack", weights=[1.0])
    assert_documented("stack-weights", str(err.value))


def test_calibration_is_refused_naming_the_shape_and_the_missing_people():
    y = np.arange(36) % 18
    p = np.eye(18)[y] * 0.5 + 0.5 / 18
    with pytest.raises(ValueError, match="cannot calibrate") as err:
        fit_biases(p[:, :3], y)
    assert_documented("calibrate-shape", str(err.value))
    with pytest.raises(ValueError, match="cannot estimate honestly") as err:
        calibrate(p, y, groups=["001"] * len(y))
    assert_documented("honest-one-person", str(err.value))
    with pytest.raises(ValueError, match="cannot estimate honestly") as err:
        calibrate(p, y)
    assert_documented("honest-no-groups", str(err.value))


def test_stacking_is_refused_naming_what_it_needs():
    y = np.arange(36) % 18
    p = np.eye(18)[y] * 0.5 + 0.5 / 18
    folds = np.arange(len(y)) % 2
    with pytest.raises(ValueError, match="fits a meta-model on validation labels") as err:
        combine("stack", [p])
    assert_documented("stack-combine", str(err.value))
    with pytest.raises(ValueError, match="fitted on 2 members") as err:
        fit_stacker([p, p], y, folds).predict([p])
    assert_documented("stack-members", str(err.value))
    with pytest.raises(ValueError, match="expected the same number") as err:
        fit_stacker([p], y[:-1], folds)
    assert_documented("stack-lengths", str(err.value))
