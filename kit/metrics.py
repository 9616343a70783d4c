"""The competition score (macro F1 over all 18 classes) and the numbers shown beside it.

Plain numpy over a bincount confusion matrix. ``macro_f1`` equals
``sklearn.metrics.f1_score(y, p, labels=range(18), average="macro", zero_division=0)``: a class
absent from both truth and prediction counts as F1 = 0, exactly like the leaderboard.

Real or noise (docs/experiments.md): :func:`seed_difference` compares repeats over seeds (a
Student-t interval, paired seed by seed or Welch's); :func:`bootstrap_difference` compares one
run of each on the same validation people, resampled with replacement (never single pictures:
a person's 7 pictures are not independent). A difference is ``beyond noise`` when its interval
leaves out zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np

from kit.labels import NUM_CLASSES, TASK_SIZES, TASKS, class_name, decode

__all__ = [
    "Interval",
    "Verdict",
    "accuracy",
    "bootstrap_difference",
    "confusion_matrix",
    "f1_from_confusion",
    "head_f1",
    "macro_f1",
    "mean_sd",
    "per_class_f1",
    "person_counts",
    "report",
    "score_probs",
    "seed_difference",
    "selection_score",
    "summarize",
    "summarize_task",
    "task_values",
]


def _as_labels(name: str, y: Any) -> np.ndarray:
    """``y`` as a 1-D int64 array; ValueError on NaN, fractions or a wrong shape."""
    if hasattr(y, "detach"):  # torch tensor, possibly on an accelerator
        y = y.detach().cpu().numpy()
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of class ids, got shape {arr.shape}")
    if arr.dtype.kind in "iub":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind != "f":
        raise ValueError(f"{name} must hold integer class ids, got dtype {arr.dtype}")
    _refuse(name, arr, ~np.isfinite(arr) | (arr != np.round(arr)), "integer class ids")
    return arr.astype(np.int64)


def _refuse(name: str, arr: np.ndarray, bad: np.ndarray, expected: str) -> None:
    """ValueError naming the first value of ``arr`` where ``bad``."""
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} holds {arr[i]} at position {i}; expected {expected}")


def _validate(y_true: Any, y_pred: Any, num_classes: int | None) -> tuple[np.ndarray, np.ndarray]:
    t, p = _as_labels("y_true", y_true), _as_labels("y_pred", y_pred)
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} labels but y_pred has {len(p)}; expected equal")
    if len(t) == 0:
        raise ValueError("y_true and y_pred are empty; expected at least one label")
    if num_classes is not None:
        for name, arr in (("y_true", t), ("y_pred", p)):
            _refuse(name, arr, (arr < 0) | (arr >= num_classes), f"0..{num_classes - 1}")
    return t, p


def _confusion(t: np.ndarray, p: np.ndarray, k: int, rows: int | None = None) -> np.ndarray:
    """Counts of the pairs ``(t, p)`` of values in ``0..k-1``: ``(rows, k)``, by default square."""
    rows = k if rows is None else rows
    return np.bincount(t * k + p, minlength=rows * k).reshape(rows, k)


def _ratio(num: np.ndarray, denom: np.ndarray) -> np.ndarray:
    """``num / denom``, 0 where ``denom`` is 0 (a class absent on both sides scores 0)."""
    return np.divide(num, denom, out=np.zeros_like(num, dtype=np.float64), where=denom > 0)


def f1_from_confusion(cm: Any) -> np.ndarray:
    """F1 of each class from confusion counts ``(..., c, c)`` (rows true classes, columns
    predictions): shape ``(..., c)``, 0 where a class is absent from both sides.

    A stack of matrices gives one row per matrix; ``.mean(-1)`` is the macro F1 of each (the
    training loop's running counts and the ensemble weight search score this way).
    """
    cm = np.asarray(cm)
    if cm.ndim < 2 or cm.shape[-1] != cm.shape[-2]:
        raise ValueError(f"expected confusion counts of shape (..., c, c), got shape {cm.shape}")
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    return _ratio(2 * tp, cm.sum(-2) + cm.sum(-1))  # predicted + true = 2tp + fp + fn


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """``(num_classes, num_classes)`` counts; rows are true classes, columns predictions."""
    t, p = _validate(y_true, y_pred, num_classes)
    return _confusion(t, p, num_classes)


def per_class_f1(y_true: Any, y_pred: Any, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """F1 of each class ``0..num_classes-1`` (0 where the class is absent from both sides)."""
    return f1_from_confusion(confusion_matrix(y_true, y_pred, num_classes))


def macro_f1(y_true: Any, y_pred: Any, num_classes: int = NUM_CLASSES) -> float:
    """The competition score: unweighted mean of :func:`per_class_f1` over all classes."""
    return float(per_class_f1(y_true, y_pred, num_classes).mean())


def accuracy(y_true: Any, y_pred: Any) -> float:
    """Fraction of rows where the prediction equals the truth."""
    t, p = _validate(y_true, y_pred, None)
    return float(np.mean(t == p))


def head_f1(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Macro F1 of each head (``"mask"``, ``"gender"``, ``"age"``) from 18-way labels."""
    t, p = _validate(y_true, y_pred, NUM_CLASSES)
    t_heads, p_heads = decode(t), decode(p)
    return {
        head: float(f1_from_confusion(_confusion(th, ph, TASK_SIZES[head])).mean())
        for head, th, ph in zip(TASKS, t_heads, p_heads, strict=True)
    }


def summarize(y_true: Any, y_pred: Any) -> dict[str, Any]:
    """Scores of 18-way labels: macro_f1, accuracy, f1_mask, f1_gender, f1_age and
    ``confusion`` (a JSON-ready list of lists, rows true, columns predicted)."""
    t, p = _validate(y_true, y_pred, NUM_CLASSES)
    cm = _confusion(t, p, NUM_CLASSES)
    heads = {f"f1_{head}": value for head, value in head_f1(t, p).items()}
    f1 = float(f1_from_confusion(cm).mean())
    return {"macro_f1": f1, "accuracy": float(np.mean(t == p)), **heads, "confusion": cm.tolist()}


def task_values(task: str, labels: Any) -> np.ndarray:
    """The ``task`` value (mask, gender or age group) of each 18-way class id in ``labels``."""
    if task not in TASK_SIZES:
        raise ValueError(f"unknown task {task!r}; expected one of {list(TASK_SIZES)}")
    t, _ = _validate(labels, labels, NUM_CLASSES)
    return decode(t)[TASKS.index(task)]


def summarize_task(task: str, y_true: Any, y_pred: Any) -> dict[str, Any]:
    """:func:`summarize`'s keys for a per-task run (``y_true`` 18-way class ids, ``y_pred``
    values of ``task``): ``f1_<task>``, ``accuracy`` and ``confusion`` are the task's;
    ``macro_f1`` and the other tasks' F1 are None (a per-task run predicts no class)."""
    k = TASK_SIZES.get(task, 0)
    t, p = _validate(task_values(task, y_true), y_pred, k)
    cm = _confusion(t, p, k)
    heads = {f"f1_{h}": None for h in TASKS}
    heads[f"f1_{task}"] = float(f1_from_confusion(cm).mean())
    return {"macro_f1": None, "accuracy": float(np.mean(t == p)), **heads, "confusion": cm.tolist()}


def score_probs(
    truth: Any, probs: np.ndarray, task: str | None = None
) -> tuple[dict[str, Any], float]:
    """(scores, loss) of ``probs`` against the official 18-way labels ``truth``; the loss is
    the mean negative log-likelihood of the official class (comparable across heads, losses and
    age thresholds). A per-task run's ``probs``, scores and loss are its ``task``'s."""
    truth, pred = np.asarray(truth, dtype=np.int64), probs.argmax(1)
    values = truth if task is None else task_values(task, truth)
    picked = probs[np.arange(len(values)), values]
    scores = summarize(truth, pred) if task is None else summarize_task(task, truth, pred)
    return scores, float(-np.log(np.clip(picked, 1e-12, None)).mean())


def selection_score(scores: dict[str, Any], task: str | None = None) -> float:
    """The score a run keeps its best checkpoint by: ``macro_f1``, or for a per-task run
    (``task``) its task's ``f1_<task>``."""
    return float(scores["macro_f1"] if task is None else scores[f"f1_{task}"])


def report(y_true: Any, y_pred: Any) -> str:
    """A text table of per-class precision / recall / F1 / support, then the summary scores."""
    t, p = _validate(y_true, y_pred, NUM_CLASSES)
    cm = _confusion(t, p, NUM_CLASSES)
    tp = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(0), cm.sum(1)
    precision, recall, f1 = _ratio(tp, predicted), _ratio(tp, support), f1_from_confusion(cm)
    lines = [f"{'class':>5}  {'name':<24}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>9}"]
    for c in range(NUM_CLASSES):
        lines.append(
            f"{c:>5}  {class_name(c):<24}{precision[c]:>10.4f}{recall[c]:>10.4f}"
            f"{f1[c]:>10.4f}{support[c]:>9d}"
        )
    heads = head_f1(t, p)
    lines += [
        "",
        f"macro F1  {f1.mean():.4f}",
        f"accuracy  {np.mean(t == p):.4f}   (n = {len(t)})",
        "head F1   " + "   ".join(f"{head} {value:.4f}" for head, value in heads.items()),
    ]
    return "\n".join(lines) + "\n"


Verdict = Literal["beyond noise", "within noise", "n/a"]


@dataclass(frozen=True)
class Interval:
    """``delta`` (the other config minus the reference), its interval ``[low, high]``, where
    the noise came from (``method``: ``bootstrap over 60 people``, ``seeds 3 vs 3, paired``)
    and the standard error of a Student interval (``se``; None for the bootstrap's)."""

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
    from scipy.stats import t  # half a second to import: only a comparison of repeats pays it

    delta = float(b.mean() - a.mean())
    half = float(t.ppf(0.5 + confidence / 2, df)) * se
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
    count = partial(_confusion, k=num_classes, rows=n_people)
    hit = t == p
    tp, predicted, true = count(person[hit], t[hit]), count(person, p), count(person, t)
    return tp.astype(np.float64), predicted.astype(np.float64), true.astype(np.float64)


def _macro_f1(tp: np.ndarray, predicted: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Macro F1 of summed counts ``(..., classes)``, as :func:`macro_f1` scores."""
    return _ratio(2 * tp, predicted + true).mean(-1)


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
