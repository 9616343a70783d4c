"""The record of a custom training transform (``fit(cfg, train_transform=...)``): what the
Config's ``preset`` cannot say, so the ledger can name it and ``--resume`` re-create it.

``train_transform.json`` holds albumentations' own serialization (``A.to_dict``; re-created by
``A.from_dict``), a one-line summary (``custom: CLAHE, GridDropout (3f2a1c9e)``: the transforms'
names and a fingerprint of their settings, so two pipelines that differ only in a parameter
still read as different) and the fingerprint itself. A pipeline albumentations cannot serialize
and re-create (a ``Lambda``, a transform class it does not know) is recorded by its ``repr`` and
a fingerprint of the source of its functions, and its summary says it is not serializable.

albumentations is imported only by the functions that build or re-create a pipeline: the
ledger reads the JSON alone (and stays quick to start).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import types
from pathlib import Path
from typing import Any

from kit import io
from kit.errors import KitError
from kit.runfolder.names import TRAIN_TRANSFORM

__all__ = [
    "TRANSFORM_FIELD",
    "NotReCreatable",
    "read_transform_record",
    "recreate_train_transform",
    "resumed_train_transform",
    "transform_record",
    "transform_summary",
    "write_train_transform",
]

#: The setting's name beside the Config's fields in the ledger (``cfg.train_transform``) and in
#: a recipe's "Changes:" line: ``fit``'s argument.
TRANSFORM_FIELD = "train_transform"
#: How many transform names a summary lists before ``...``.
_SHOWN_NAMES = 6
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


class NotReCreatable(KitError, ValueError):
    """The recorded pipeline cannot be rebuilt from the run folder (it was not serializable)."""


def _children(transform: Any) -> list[Any]:
    return list(getattr(transform, "transforms", None) or [])


def _names(transform: Any) -> list[str]:
    """The transforms' class names, depth first; a nested group reads ``OneOf[Blur, ...]``."""
    children = _children(transform)
    if not children:
        return [type(transform).__name__]
    return [
        f"{type(c).__name__}[{', '.join(_names(c))}]" if _children(c) else type(c).__name__
        for c in children
    ]


def _repr(transform: Any) -> str:
    """``repr`` without memory addresses; albumentations' Compose repr serializes its
    transforms, which a Lambda refuses: then the transforms' own reprs, nested."""
    try:
        text = repr(transform)
    except ValueError:
        inner = ", ".join(_repr(c) for c in _children(transform))
        text = f"{type(transform).__name__}([{inner}])"
    return _ADDRESS.sub("", text)


def _functions(value: Any, seen: set[int]) -> list[types.FunctionType]:
    """Every plain function held by ``value``'s transforms (a Lambda's image=..., say)."""
    if id(value) in seen:
        return []
    seen.add(id(value))
    found = []
    for attr in vars(value).values() if hasattr(value, "__dict__") else []:
        if isinstance(attr, types.FunctionType) and attr.__module__ != "albumentations":
            found.append(attr)
        elif isinstance(attr, (list, tuple)):
            for item in attr:
                found += _functions(item, seen)
    return found


def _source(fn: types.FunctionType) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):  # defined where no source is kept (exec, a REPL)
        code = fn.__code__
        return f"{fn.__qualname__}:{code.co_code.hex()}:{code.co_consts!r}"


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def transform_record(transform: Any) -> dict[str, Any]:
    """What :func:`write_train_transform` stores for ``transform`` (see the module's doc)."""
    import albumentations as A

    names = _names(transform)
    shown = ", ".join(names[:_SHOWN_NAMES]) + (", ..." if len(names) > _SHOWN_NAMES else "")
    text = _repr(transform)
    try:
        serialized = A.to_dict(transform)
        A.from_dict(serialized)  # a named Lambda serializes but cannot come back alone
    except Exception:  # albumentations raises ValueError, KeyError, ... for what it cannot do
        serialized = None
    if serialized is not None:
        fingerprint = _sha(json.dumps(serialized["transform"], sort_keys=True, default=str))
        summary = f"custom: {shown} ({fingerprint[:8]})"
    else:
        sources = [_source(fn) for fn in _functions(transform, set())]
        fingerprint = _sha("\n".join([text, *sources]))
        summary = f"custom, not serializable (repr + source {fingerprint[:8]}): {shown}"
    return {
        "summary": summary,
        "fingerprint": fingerprint,
        "serializable": serialized is not None,
        "albumentations": serialized,
        "repr": text,
    }


def write_train_transform(run_dir: str | os.PathLike[str], transform: Any) -> Path:
    """``train_transform.json`` in ``run_dir`` for ``transform`` (see :func:`transform_record`)."""
    record = transform_record(transform)
    return io.write_text(Path(run_dir) / TRAIN_TRANSFORM, json.dumps(record, indent=2) + "\n")


def read_transform_record(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run's ``train_transform.json``, or None when it trained with its preset alone."""
    path = Path(run_dir) / TRAIN_TRANSFORM
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not readable ({err}); it records the custom transform") from err
    if not isinstance(record, dict) or "summary" not in record:
        raise ValueError(f"{path}: no 'summary'; not a record of a training transform")
    return record


def transform_summary(run_dir: str | os.PathLike[str]) -> str | None:
    """The ledger's one line for the run's custom transform (None: its preset's)."""
    record = read_transform_record(run_dir)
    return None if record is None else str(record["summary"])


def recreate_train_transform(run_dir: str | os.PathLike[str]) -> Any | None:
    """The run's custom transform rebuilt by ``A.from_dict`` (None: it used its preset).

    :class:`NotReCreatable` when it was recorded by its repr alone: pass the same transform
    again (``kit.fit(cfg.replace(resume=...), train_transform=...)``, or the recipe does).
    """
    record = read_transform_record(run_dir)
    if record is None:
        return None
    if not record.get("serializable"):
        raise NotReCreatable(
            f"{Path(run_dir) / TRAIN_TRANSFORM}: the run's training transform is not "
            f"serializable ({record['summary']}); resume it from the code that made it "
            "(the recipe, or kit.fit(cfg.replace(resume=RUN_DIR), train_transform=...))"
        )
    import albumentations as A

    return A.from_dict(record["albumentations"])


def resumed_train_transform(run_dir: str | os.PathLike[str], given: Any | None) -> Any | None:
    """The training transform a resume of ``run_dir`` trains with: ``given`` when it is the one
    the run recorded, the recorded one re-created when ``given`` is None; a ValueError when
    they differ (the run's ``last.pt`` was trained under the recorded one)."""
    record = read_transform_record(run_dir)
    if given is None:
        return recreate_train_transform(run_dir)
    now = transform_record(given)
    if record is None or record["fingerprint"] != now["fingerprint"]:
        was = "its preset's" if record is None else record["summary"]
        raise ValueError(
            f"cannot resume {run_dir} with changed train_transform: {was} -> {now['summary']}; "
            "resume with the transform it trained with (or none: kit re-creates the recorded "
            "one), or start a new run"
        )
    return given
