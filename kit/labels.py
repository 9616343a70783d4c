"""The 18 competition classes: mask x gender x age group, and conversions between them.

``class = mask * 6 + gender * 3 + age_group``. Every function here accepts Python ints,
numpy arrays and torch tensors alike and returns the same kind it was given.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "AGE_THRESHOLDS",
    "NUM_CLASSES",
    "TASKS",
    "TASK_SIZES",
    "VALUE_NAMES",
    "AgeGroup",
    "Gender",
    "Mask",
    "age_to_group",
    "class_name",
    "decode",
    "encode",
    "heads_from_joint",
    "joint_from_heads",
]


class Mask(IntEnum):
    WEAR = 0
    INCORRECT = 1
    NOT_WEAR = 2


class Gender(IntEnum):
    MALE = 0
    FEMALE = 1


class AgeGroup(IntEnum):
    YOUNG = 0  # under 30
    MIDDLE = 1  # 30 to 59
    OLD = 2  # 60 and over


NUM_CLASSES = 18
#: Official age-group boundaries: scoring always uses these.
AGE_THRESHOLDS: tuple[int, int] = (30, 60)
#: The three tasks a class is made of, in the order used everywhere: the heads of a three-head
#: model and the per-task heads (the head registry is :data:`kit.models.HEADS`).
TASKS: tuple[str, str, str] = ("mask", "gender", "age")
TASK_SIZES: dict[str, int] = {"mask": 3, "gender": 2, "age": 3}

#: task -> the names of its values, in id order (``VALUE_NAMES["mask"][1] == "incorrect"``).
VALUE_NAMES: dict[str, tuple[str, ...]] = {
    "mask": ("wear", "incorrect", "not_wear"),
    "gender": ("male", "female"),
    "age": ("<30", "30-59", ">=60"),
}

T = TypeVar("T")


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _check_range(name: str, x: Any, upper: int) -> None:
    """Raise ValueError naming the first value of ``x`` outside ``[0, upper)``."""
    arr = x.detach().cpu().numpy() if _is_tensor(x) else np.asarray(x)
    whole = arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
    if arr.dtype.kind not in "iub" and not whole:
        raise ValueError(f"{name} must be integer, got dtype {arr.dtype} ({arr.ravel()[:3]!r})")
    bad = (arr < 0) | (arr >= upper)
    if np.any(bad):
        value = arr[bad].ravel()[0] if arr.ndim else arr
        raise ValueError(f"{name} must be in 0..{upper - 1}, got {value!r}")


def encode(mask: T, gender: T, age_group: T) -> T:
    """Class id from (mask, gender, age_group); elementwise on arrays and tensors."""
    for name, x, upper in (("mask", mask, 3), ("gender", gender, 2), ("age_group", age_group, 3)):
        _check_range(name, x, upper)
    out = mask * 6 + gender * 3 + age_group
    return int(out) if isinstance(out, (int, np.integer)) else out


def decode(label: T) -> tuple[T, T, T]:
    """(mask, gender, age_group) from a class id; inverse of :func:`encode`."""
    _check_range("label", label, NUM_CLASSES)
    mask, rest = label // 6, label % 6
    gender, age_group = rest // 3, rest % 3
    if isinstance(label, (int, np.integer)):
        return int(mask), int(gender), int(age_group)
    return mask, gender, age_group


def age_to_group(age: T, thresholds: tuple[int, int] = AGE_THRESHOLDS) -> T:
    """Age group from age: 0 below ``thresholds[0]``, 2 at or above ``thresholds[1]``.

    Training may use other thresholds (teams trained with (30, 58)); scoring always uses
    the official :data:`AGE_THRESHOLDS`.
    """
    low, high = thresholds
    if not low < high:
        raise ValueError(f"age thresholds must be increasing, got {thresholds!r}")
    if _is_tensor(age):
        return (age >= low).long() + (age >= high).long()
    if isinstance(age, (int, np.integer, float, np.floating)):
        return int(age >= low) + int(age >= high)
    arr = np.asarray(age)
    return (arr >= low).astype(np.int64) + (arr >= high).astype(np.int64)


def class_name(label: int) -> str:
    """Readable name of a class id, e.g. ``class_name(0) == "wear/male/<30"``."""
    return "/".join(VALUE_NAMES[t][v] for t, v in zip(TASKS, decode(int(label)), strict=True))


def _check_probs(name: str, p: Any, width: int) -> None:
    if p.ndim != 2 or p.shape[1] != width:
        raise ValueError(f"{name} must have shape (n, {width}), got {tuple(p.shape)}")


def joint_from_heads(p_mask: T, p_gender: T, p_age: T) -> T:
    """18-way probabilities from the three heads' probabilities (independent product).

    Inputs are (n, 3), (n, 2), (n, 3) rows of probabilities; the result's rows sum to 1
    and column ``encode(m, g, a)`` holds ``p_mask[m] * p_gender[g] * p_age[a]``.
    """
    for task, p in zip(TASKS, (p_mask, p_gender, p_age), strict=True):
        _check_probs(f"p_{task}", p, TASK_SIZES[task])
    joint = p_mask[:, :, None, None] * p_gender[:, None, :, None] * p_age[:, None, None, :]
    joint = joint.reshape(joint.shape[0], NUM_CLASSES)
    return joint / joint.sum(1, keepdims=True)  # numpy's keyword, which torch accepts too


def heads_from_joint(p18: T) -> tuple[T, T, T]:
    """Marginal (mask, gender, age) probabilities of 18-way probabilities."""
    _check_probs("p18", p18, NUM_CLASSES)
    cube = p18.reshape(p18.shape[0], 3, 2, 3)
    return cube.sum((2, 3)), cube.sum((1, 3)), cube.sum((1, 2))
