"""The types of ``Config`` fields: whether a value has a field's type hint, the value fitted to
it (JSON lists become tuples, ints floats), and the hint's readable name for messages and
``--help``.
"""

from __future__ import annotations

import types
from typing import Any, Literal, Union, get_args, get_origin

from kit.registry import UnknownName, did_you_mean

__all__ = ["coerce", "matches", "type_name"]


def type_name(hint: Any) -> str:
    """Readable name of a type hint, e.g. ``tuple[int, int] or None``."""
    if get_origin(hint) in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in get_args(hint))
    if hint is type(None):
        return "None"
    if get_origin(hint) is Literal:
        return " | ".join(map(repr, get_args(hint)))
    if get_origin(hint) is not None:
        return f"{get_origin(hint).__name__}[{', '.join(type_name(a) for a in get_args(hint))}]"
    return getattr(hint, "__name__", str(hint))


def matches(value: Any, hint: Any) -> bool:
    """Whether ``value`` has the type ``hint`` (a bool is no int here; an int is a float)."""
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is Literal:  # a closed choice: one of the listed values
        return isinstance(value, str) and value in args
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple:
        return (
            isinstance(value, tuple)
            and len(value) == len(args)
            and all(matches(v, a) for v, a in zip(value, args, strict=True))
        )
    if origin is list:
        return isinstance(value, list) and all(matches(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            matches(k, args[0]) and matches(v, args[1]) for k, v in value.items()
        )
    return isinstance(value, hint)


def coerce(key: str, value: Any, hint: Any) -> Any:
    """``value`` fitted to ``hint`` (JSON lists -> tuples, ints -> floats) or ValueError."""
    tuple_hint = next((a for a in (hint, *get_args(hint)) if get_origin(a) is tuple), None)
    if tuple_hint is not None and isinstance(value, (list, tuple)):
        elems = get_args(tuple_hint)
        if len(value) == len(elems):
            value = tuple(
                _to_float(v) if a is float else v for v, a in zip(value, elems, strict=True)
            )
    if hint is float:
        value = _to_float(value)
    if get_origin(hint) is dict and get_args(hint)[1] is float and isinstance(value, dict):
        value = {k: _to_float(v) for k, v in value.items()}
    if get_origin(hint) is Literal and isinstance(value, str) and not matches(value, hint):
        # worded like a registry's unknown name, so that a closed choice reads as any other
        valid = sorted(get_args(hint))
        raise UnknownName(
            f"config field {key!r} is {value!r}{did_you_mean(value, valid)}; valid: {valid}"
        )
    if not matches(value, hint):
        raise ValueError(
            f"config field {key!r} got {value!r} ({type(value).__name__}); "
            f"expected {type_name(hint)}"
        )
    return value


def _to_float(v: Any) -> Any:
    return float(v) if matches(v, float) else v
