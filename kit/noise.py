"""Real or noise: is a difference of macro F1 larger than what chance alone moves it by?

Two sources of chance, two methods (docs/experiments.md):

- :func:`seed_difference`: runs of each config repeated over seeds. The spread between the
  repeats (their standard deviation) is the noise; the difference of the means gets a
  Student-t interval (paired seed by seed where both configs ran the same seeds, else Welch's).
- :func:`bootstrap_difference`: one run of each on the same validation people. The people are
  resampled with replacement (never single pictures: a person's 7 pictures are not
  independent), each resample's macro F1 is recomputed from the people's confusion counts, and
  the middle 95% of the resampled differences is the interval. It measures the noise of the
  validation sample for these two fixed models, not the seed noise.

A difference is ``beyond noise`` when its interval leaves out zero. Every function takes
explicit keyword arguments and plain arrays; the ledger (:mod:`kit.runs`) reads the run
folders and wires them in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from kit.labels import NUM_CLASSES

__all__ = [
    "Interval",
    "Verdict",
    "bootstrap_difference",
    "mean_sd",
    "person_counts",
    "seed_difference",
]

Verdict = Literal["beyond noise", "within noise", "n/a"]


@dataclass(frozen=True)
class Interval:
    """``delta`` (the other config minus the reference) and its interval ``[low, high]``.

    ``method`` says where the noise came from, e.g. ``bootstrap over 60 people`` or
    ``seeds 3 vs 3, paired``; ``se`` is the standard error of ``delta`` where the interval is
    Student's (seeds), None for the bootstrap's percentile interval.
    """

    delta: float
    low: float
    high: float
    method: str
    se: float | None = None

    @property
    def verdict(self) -> Verdict:
        """``beyond noise`` when the interval leaves out zero, else ``within noise``."""
        return "beyond noise" if self.low > 0 or self.high < 0 else "within noise"

    def text(self) -> str:
        """``+0.0312 [+0.0101, +0.0533]``."""
        return f"{self.delta:+.4f} [{self.low:+.4f}, {self.high:+.4f}]"


def mean_sd(values: Sequence[float]) -> tuple[float, float | None, int]:
    """Mean, sample standard deviation (None for fewer than 2 values) and count."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        raise ValueError("mean_sd of no values; expected at least one score")
    sd = float(x.std(ddof=1)) if x.size > 1 else None
    return float(x.mean()), sd, int(x.size)


def _t_quantile(p: float, df: float) -> float:
    # scipy costs half a second to import: only a comparison of repeats pays it
    from scipy.stats import t

    return float(t.ppf(p, df))


def seed_difference(
    *,
    reference: Sequence[float],
    other: Sequence[float],
    paired: bool = False,
    confidence: float = 0.95,
) -> Interval | None:
    """Mean of ``other`` minus mean of ``reference`` (one score per seed), with a Student-t
    interval: from the seed-by-seed differences when ``paired`` (both lists in the same seed
    order), else from each side's own spread (Welch). None when a side has fewer than 2
    scores (no spread to measure the noise with)."""
    a, b = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    if paired:
        if a.shape != b.shape:
            raise ValueError(f"paired scores need the same seeds: {a.size} vs {b.size} scores")
        d = b - a
        if d.size < 2:
            return None
        se, df = float(d.std(ddof=1) / np.sqrt(d.size)), d.size - 1
        method = f"seeds {d.size} vs {d.size}, paired"
    else:
        if a.size < 2 or b.size < 2:
            return None
        va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
        se = float(np.sqrt(va + vb))
        # Welch-Satterthwaite degrees of freedom (both spreads 0: any df gives a 0-wide interval)
        denom = va**2 / (a.size - 1) + vb**2 / (b.size - 1)
        df = (va + vb) ** 2 / denom if denom > 0 else a.size + b.size - 2
        method = f"seeds {a.size} vs {b.size}"
    delta = float(b.mean() - a.mean())
    half = _t_quantile(0.5 + confidence / 2, df) * se
    return Interval(delta, delta - half, delta + half, method, se)


def person_counts(
    *,
    truth: Any,
    pred: Any,
    person_ids: Any,
    num_classes: int = NUM_CLASSES,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per person and class: true positives, predictions and true pictures, each of shape
    ``(people, num_classes)``; people in ``np.unique(person_ids)`` order. Summed over any
    multiset of people they give that multiset's per-class F1 (2 tp / (predicted + true))."""
    _, person = np.unique(np.asarray(person_ids, dtype=object).astype(str), return_inverse=True)
    t, p = np.asarray(truth, np.int64), np.asarray(pred, np.int64)
    if not (len(t) == len(p) == len(person)):
        raise ValueError(
            f"truth, pred and person_ids differ in length: {len(t)}, {len(p)}, {len(person)}"
        )
    n_people = int(person.max()) + 1 if len(person) else 0

    def count(rows: np.ndarray, classes: np.ndarray) -> np.ndarray:
        flat = np.bincount(rows * num_classes + classes, minlength=n_people * num_classes)
        return flat.reshape(n_people, num_classes).astype(np.float64)

    hit = t == p
    return count(person[hit], t[hit]), count(person, p), count(person, t)


def _macro_f1(tp: np.ndarray, predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Macro F1 of summed counts ``(..., classes)``: a class absent on both sides scores 0,
    as in :func:`kit.metrics.macro_f1`."""
    denom = predicted + true
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return f1.mean(-1)


def bootstrap_difference(
    *,
    truth: Any,
    pred_reference: Any,
    pred_other: Any,
    person_ids: Any,
    resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    num_classes: int = NUM_CLASSES,
) -> Interval:
    """Macro F1 of ``pred_other`` minus that of ``pred_reference`` on the same pictures
    (``truth``, one ``person_ids`` entry per picture), with a percentile interval from
    ``resamples`` draws of the people with replacement (both runs scored on each draw)."""
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    tp_a, pred_a, true = person_counts(
        truth=truth, pred=pred_reference, person_ids=person_ids, num_classes=num_classes
    )
    tp_b, pred_b, _ = person_counts(
        truth=truth, pred=pred_other, person_ids=person_ids, num_classes=num_classes
    )
    n_people = len(true)
    rng = np.random.default_rng(seed)
    # how often each person is drawn in each resample: (resamples, people)
    draws = rng.integers(0, n_people, size=(resamples, n_people))
    offsets = np.arange(resamples)[:, None] * n_people
    weights = np.bincount((draws + offsets).ravel(), minlength=resamples * n_people)
    weights = weights.reshape(resamples, n_people).astype(np.float64)
    true_w = weights @ true
    f1_a = _macro_f1(weights @ tp_a, weights @ pred_a, true_w)
    f1_b = _macro_f1(weights @ tp_b, weights @ pred_b, true_w)
    low, high = np.quantile(f1_b - f1_a, [0.5 - confidence / 2, 0.5 + confidence / 2])
    delta = float(
        _macro_f1(tp_b.sum(0), pred_b.sum(0), true.sum(0))
        - _macro_f1(tp_a.sum(0), pred_a.sum(0), true.sum(0))
    )
    return Interval(delta, float(low), float(high), f"bootstrap over {n_people} people")
