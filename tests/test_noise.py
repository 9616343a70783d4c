"""kit.metrics: the paired bootstrap over validation people finds a planted difference and not
an unplanted one, resamples people (not pictures), is seeded; the seed-repeat interval is
Student's (paired or Welch)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from kit.labels import NUM_CLASSES
from kit.metrics import bootstrap_difference, macro_f1, mean_sd, person_counts, seed_difference
from tests import _proc

PEOPLE, PICTURES = 120, 7


def _validation(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Truth and person id of each picture: 7 pictures per person, every class present."""
    rng = np.random.default_rng(seed)
    person = np.repeat(np.arange(PEOPLE), PICTURES)
    truth = rng.integers(0, NUM_CLASSES, PEOPLE * PICTURES)
    return truth, person.astype(str)


def _guesses(truth: np.ndarray, right: float, seed: int) -> np.ndarray:
    """Predictions right on about ``right`` of the pictures, random classes elsewhere."""
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(truth)) >= right
    return np.where(wrong, (truth + rng.integers(1, NUM_CLASSES, len(truth))) % NUM_CLASSES, truth)


def test_person_counts_sum_to_the_macro_f1_of_the_metric():
    truth, person = _validation()
    pred = _guesses(truth, 0.5, 1)
    tp, predicted, true = person_counts(truth=truth, pred=pred, person_ids=person)
    assert tp.shape == predicted.shape == true.shape == (PEOPLE, NUM_CLASSES)
    tp, predicted, true = tp.sum(0), predicted.sum(0), true.sum(0)
    f1 = np.divide(2 * tp, predicted + true, out=np.zeros_like(tp), where=predicted + true > 0)
    assert f1.mean() == pytest.approx(macro_f1(truth, pred))


def test_a_planted_gain_on_a_share_of_the_people_is_beyond_noise():
    truth, person = _validation()
    reference = _guesses(truth, 0.5, 1)
    # the other run is the reference made right on every picture of a third of the people
    better = np.isin(person, np.arange(0, PEOPLE, 3).astype(str))
    other = np.where(better, truth, reference)
    ci = bootstrap_difference(
        truth=truth, pred_reference=reference, pred_other=other, person_ids=person
    )
    assert ci.delta == pytest.approx(macro_f1(truth, other) - macro_f1(truth, reference))
    assert ci.delta > 0.1 and 0 < ci.low < ci.delta < ci.high
    assert ci.verdict == "beyond noise"
    assert ci.method == f"bootstrap over {PEOPLE} people"
    # the same run against itself: no difference, an interval of zero width
    same = bootstrap_difference(
        truth=truth, pred_reference=reference, pred_other=reference, person_ids=person
    )
    assert (same.delta, same.low, same.high, same.verdict) == (0, 0, 0, "within noise")


def test_two_runs_of_equal_skill_are_within_noise():
    truth, person = _validation()
    a, b = _guesses(truth, 0.5, 1), _guesses(truth, 0.5, 2)
    ci = bootstrap_difference(truth=truth, pred_reference=a, pred_other=b, person_ids=person)
    assert ci.low < 0 < ci.high and ci.verdict == "within noise"
    assert ci.delta == pytest.approx(macro_f1(truth, b) - macro_f1(truth, a))


def test_people_not_pictures_are_resampled():
    """When a person's pictures are all right or all wrong together, resampling pictures as
    if independent would understate the noise: the person-level interval is wider."""
    truth, person = _validation()
    rng = np.random.default_rng(3)
    good_a, good_b = rng.random(PEOPLE) < 0.5, rng.random(PEOPLE) < 0.5
    idx = np.repeat(np.arange(PEOPLE), PICTURES)
    wrong = (truth + 1) % NUM_CLASSES
    a, b = np.where(good_a[idx], truth, wrong), np.where(good_b[idx], truth, wrong)
    by_person = bootstrap_difference(truth=truth, pred_reference=a, pred_other=b, person_ids=person)
    by_picture = bootstrap_difference(
        truth=truth, pred_reference=a, pred_other=b, person_ids=np.arange(len(truth))
    )
    assert by_person.delta == pytest.approx(by_picture.delta)
    assert by_person.high - by_person.low > 1.8 * (by_picture.high - by_picture.low)


def test_the_bootstrap_is_seeded():
    truth, person = _validation()
    a, b = _guesses(truth, 0.5, 1), _guesses(truth, 0.55, 2)

    def run(seed: int):
        return bootstrap_difference(
            truth=truth,
            pred_reference=a,
            pred_other=b,
            person_ids=person,
            seed=seed,
            resamples=300,
        )

    assert run(0) == run(0)
    assert run(0) != run(1)
    with pytest.raises(ValueError, match="resamples must be at least 1"):
        bootstrap_difference(
            truth=truth, pred_reference=a, pred_other=b, person_ids=person, resamples=0
        )


def test_seed_difference_is_students_interval_paired_or_welch():
    a, b = [0.60, 0.62, 0.64], [0.70, 0.70, 0.76]
    paired = seed_difference(reference=a, other=b, paired=True)
    low, high = stats.ttest_rel(b, a).confidence_interval(0.95)
    assert (paired.delta, paired.low, paired.high) == pytest.approx((0.1, low, high))
    assert paired.method == "seeds 3 vs 3, paired" and paired.verdict == "beyond noise"
    assert paired.se == pytest.approx(np.std([0.10, 0.08, 0.12], ddof=1) / np.sqrt(3))
    welch = seed_difference(reference=a, other=b)
    low, high = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert (welch.delta, welch.low, welch.high) == pytest.approx((0.1, low, high))
    assert welch.se == pytest.approx(np.sqrt(np.var(a, ddof=1) / 3 + np.var(b, ddof=1) / 3))
    close = seed_difference(reference=a, other=[0.61, 0.66, 0.60])
    assert close.verdict == "within noise"
    # one score on a side: no spread to measure the noise with
    assert seed_difference(reference=[0.6], other=b) is None
    assert seed_difference(reference=[0.6], other=[0.7], paired=True) is None
    with pytest.raises(ValueError, match="same seeds"):
        seed_difference(reference=a, other=b[:2], paired=True)


def test_mean_sd():
    assert mean_sd([0.6, 0.62, 0.64]) == pytest.approx((0.62, 0.02, 3))
    assert mean_sd([0.5]) == (0.5, None, 1)
    with pytest.raises(ValueError, match="no values"):
        mean_sd([])


def test_the_benchmark_script_prints_its_time():
    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_noise.py"
    args = ["--people", "20", "--resamples", "50", "--repeat", "1"]
    done = _proc.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("2 runs x 140 pictures (20 people) x 50 resamples: ")
    assert " s (best of 1;" in done.stdout
