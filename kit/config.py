"""The ``Config`` dataclass: everything a run depends on, with YAML/JSON files and a command line.

Precedence is recipe values < ``--config FILE`` < command-line flags. The command line is built
from the fields (:func:`build_parser`), so a new field is a new flag with its help text; the help
of a field with a ``registry`` kind lists what that registry holds (docs/configuration.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from kit import cli, io
from kit._config_checks import (
    check,
    check_registries,
    coerce,
    parse_age_ranges,
    parse_folds,
    type_name,
)
from kit._config_fields import ROLES, Fields
from kit.cli import add_debug_flag
from kit.errors import ConfigError
from kit.registry import did_you_mean, help_lines

__all__ = [
    "OTHER",
    "ROLES",
    "Config",
    "build_parser",
    "check_registries",
    "fields_with_role",
    "flag_converter",
    "namespace_changes",
    "parse_age_ranges",
    "parse_folds",
    "resumable_fields",
    "saved_config",
    "sections",
    "smoke_note",
    "split_fields",
]


@dataclass
class Config(Fields):
    """Every setting of a training run. Defaults train a tiny CPU model on the fixture. The
    fields are declared in :class:`kit._config_fields.Fields`; this class adds the methods."""

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON/YAML values (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        """A Config from ``d``; unknown keys and ill-typed values raise ValueError."""
        return cls().replace(**d)

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied, checked like :meth:`from_dict`."""
        hints = get_type_hints(Config)
        unknown = next((k for k in changes if k not in hints), None)
        if unknown is not None:
            close = did_you_mean(unknown, hints, n=3, cutoff=0.5)
            valid = ", ".join(hints)
            raise ConfigError(f"unknown config key {unknown!r}{close}; valid keys: {valid}")
        coerced = {k: coerce(k, v, hints[k]) for k, v in changes.items()}
        return dataclasses.replace(self, **coerced)

    def save(self, path: str | Path) -> Path:
        """Write the config as YAML (.yaml/.yml) or JSON (.json), atomically."""
        path = Path(path)
        if _kind(path) == "json":
            return io.write_json(path, self.to_dict())
        return io.write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))

    @classmethod
    def load(cls, path: str | Path) -> Config:
        """Read a config written by :meth:`save` (or by hand); missing keys keep defaults."""
        return apply_file(cls(), path)

    def validate(self) -> Config:
        """Check types, ranges and the names of the registries imported so far (training
        requires them all: :func:`check_registries`); return self so calls can chain."""
        check(self)
        return self

    def smoke_variant(self) -> Config:
        """The same recipe shrunk to a seconds-long end-to-end run (model, head, loss kept)."""
        return dataclasses.replace(
            self,
            smoke=True,
            epochs=min(self.epochs, 2),
            max_steps_per_epoch=2,
            batch_size=8,
            eval_batch_size=64,
            grad_accum=1,
            image_size=(64, 48),  # multiples of 16: patch-16 ViTs fit too
            limit_people=12 if self.limit_people is None else min(self.limit_people, 12),
            workers=0,
            early_stopping=0,
            refit_epochs=min(self.refit_epochs, 1),
            freeze_epochs=min(self.freeze_epochs, 1),
        )


def smoke_note(cfg: Config, small: Config) -> str:
    """``smoke: epochs 20 -> 2, image_size 380x380 -> 64x48, ...``: what ``--smoke`` changed."""

    def show(value: object) -> str:
        return "x".join(map(str, value)) if isinstance(value, tuple) else str(value)

    changed = [
        f"{f.name} {show(getattr(cfg, f.name))} -> {show(getattr(small, f.name))}"
        for f in dataclasses.fields(Config)
        if f.name != "smoke" and getattr(cfg, f.name) != getattr(small, f.name)
    ]
    return "smoke: " + (", ".join(changed) or "nothing to shrink")


def fields_with_role(*roles: str) -> tuple[str, ...]:
    """Names of the Config fields whose metadata role is one of ``roles`` (see :data:`ROLES`)."""
    if unknown := [r for r in roles if r not in ROLES]:
        raise ValueError(f"unknown field role {unknown[0]!r}; valid: {sorted(ROLES)}")
    return tuple(f.name for f in dataclasses.fields(Config) if f.metadata["role"] in roles)


def resumable_fields() -> tuple[str, ...]:
    """The fields ``--resume`` may change (metadata ``resume``): none of them shapes the
    weights, the data, the split or the schedule the run's ``last.pt`` was trained under."""
    return tuple(f.name for f in dataclasses.fields(Config) if f.metadata["resume"])


def saved_config(saved: dict[str, Any]) -> dict[str, Any]:
    """A run folder's ``config.json`` as the run was trained: a field it lacks (the run was
    saved before the field existed) gets the value such runs trained with (field metadata
    ``absent``), not today's default. An empty dict (no file) stays empty."""
    if not saved:
        return saved
    absent = {f.name: f.metadata["absent"] for f in dataclasses.fields(Config)}
    return {**{k: v for k, v in absent.items() if v is not None and k not in saved}, **saved}


def split_fields() -> tuple[str, ...]:
    """The fields that decide which people validate in each fold (``split=True``)."""
    return tuple(f.name for f in dataclasses.fields(Config) if f.metadata["split"])


def _kind(path: Path) -> str:
    kinds = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}
    if path.suffix.lower() not in kinds:
        raise ConfigError(f"{path}: config files end in .json, .yaml or .yml")
    return kinds[path.suffix.lower()]


def apply_file(cfg: Config, path: str | Path, *, saved: bool = False) -> Config:
    """``cfg`` with the keys present in the YAML/JSON file at ``path`` replaced (others kept);
    with ``saved``, the file is a run folder's config.json, read by :func:`saved_config`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    kind = _kind(path)
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if kind == "json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: not valid {kind.upper()} ({err})") from err
    except ValueError as err:  # not UTF-8
        raise ConfigError(f"{path}: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    try:
        return cfg.replace(**(saved_config(data) if saved else data))
    except ValueError as err:
        raise ConfigError(f"{path}: {err}") from err


_EXTRA = ("config", "save_config", "debug", "estimate", "find_lr")
#: a section heading: a short lower-case comment on its own line at the fields' indent.
_SECTION = re.compile(r"^    # ([a-z][a-z ]{0,30})$")
_FIELD = re.compile(r"^    (\w+)\s*:")
#: the section of a field under no heading
OTHER = "other"


def build_parser(base: Any, description: str | None = None) -> argparse.ArgumentParser:
    """A parser with one option per field of ``base``, in one group per section of the Config
    (its ``# comment`` headings); unset options stay out of the result. ``description`` (a
    recipe's: what it does, needs and costs) opens ``--help``."""
    parser = cli.ArgumentParser(
        # the one-line usage: the description comes first, the ~90 options follow in groups
        usage="%(prog)s [-h] [--config FILE] [--save-config FILE] [--debug] [--FIELD VALUE ...]",
        description=f"{description or 'Train a model.'}\n\nEvery field of kit.Config is an option, "
        "grouped as in docs/configuration.md; precedence: recipe < --config FILE < flags.",
        argument_default=argparse.SUPPRESS,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE", default=None, help="YAML/JSON config file")
    parser.add_argument(
        "--save-config", metavar="FILE", default=None, help="write the resolved config and exit"
    )
    for flag, metavar, help_text in (  # measure instead of train (kit.recipe._measure)
        (
            "--estimate",
            "PICTURES",
            "measure instead of train: time the face boxes, cache, training steps and TTA "
            "inference on a sample of PICTURES (default 300, 48 with --smoke) at these settings "
            "and print each stage's projected time, peak GPU memory and the cache's disk; no run "
            "folder",
        ),
        (
            "--find-lr",
            "STEPS",
            "learning-rate range test instead of training: STEPS steps (default 200, 30 with "
            "--smoke) with the lr growing exponentially until the loss blows up; writes "
            "lr_find/<name>.png and prints a suggested --lr; no run folder",
        ),
    ):
        parser.add_argument(
            flag, nargs="?", const=0, type=_count, metavar=metavar, default=None, help=help_text
        )
    add_debug_flag(parser)
    hints = get_type_hints(type(base))
    by_field, groups = sections(type(base)), {}
    for f in dataclasses.fields(base):
        section = by_field.get(f.name, OTHER)
        if section not in groups:
            groups[section] = parser.add_argument_group(section)
        hint = hints[f.name]
        # a closed choice's values are its metavar, like argparse's own choices
        kind = "" if get_origin(hint) is Literal else f"{type_name(hint)}; "
        help_text = f"{f.metadata.get('help', '')} [{kind}default: {_show(getattr(base, f.name))}]"
        help_text += _registered(f.metadata.get("registry"))
        if hint is bool:
            kwargs: dict[str, Any] = {"action": argparse.BooleanOptionalAction}
        elif get_origin(hint) is tuple:
            elems = get_args(hint)
            meta = tuple(type_name(e).upper() for e in elems)
            kwargs = {"nargs": len(elems), "type": flag_converter(elems[0]), "metavar": meta}
        else:
            kwargs = {"type": flag_converter(hint), "metavar": _metavar(hint)}
        groups[section].add_argument("--" + f.name.replace("_", "-"), help=help_text, **kwargs)
    return parser


def _count(text: str) -> int:
    """An integer >= 1 (``--estimate 300``, ``--find-lr 400``)."""
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def namespace_changes(ns: argparse.Namespace, config_type: type) -> dict[str, Any]:
    """The config fields given on the command line (``nargs`` lists back to tuples)."""
    hints = get_type_hints(config_type)
    return {
        k: tuple(v) if get_origin(hints[k]) is tuple else v
        for k, v in vars(ns).items()
        if k not in _EXTRA
    }


def sections(config_cls: type) -> dict[str, str]:
    """field -> the ``# comment`` heading above it in the body of the class that declares it
    (``Config``'s fields are declared in a base class), ``other`` if none."""
    out: dict[str, str] = {}
    for cls in reversed([c for c in config_cls.__mro__ if dataclasses.is_dataclass(c)]):
        try:
            lines, _ = inspect.getsourcelines(cls)
        except (OSError, TypeError):  # no source (frozen or interactive): one flat table
            continue
        current = OTHER
        for line in lines:
            if match := _SECTION.match(line):
                current = match[1]
            elif match := _FIELD.match(line):
                out.setdefault(match[1], current)
    return out


def _registered(kind: str | None) -> str:
    """What the registry of ``kind`` holds: `` Registered: a, b.`` when its entries are bare
    names, else one line per entry (``base: no augmentation``); ``""`` without a kind."""
    lines = help_lines(kind) if kind else []
    if not lines:
        return ""
    if all(line.isidentifier() for line in lines):
        text = f" Registered: {', '.join(lines)}."
    else:
        text = "".join(f"\n- {line}" for line in lines)
    return text.replace("%", "%%")  # argparse %-formats help texts


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's help, but a line break in a help text or the description stays one (a
    registry's entries are listed one per line); each line is still wrapped to the terminal."""

    # the hooks argparse's own RawDescriptionHelpFormatter and RawTextHelpFormatter override
    def _fill_text(self, text: str, width: int, indent: str) -> str:
        fill = super()._fill_text
        return "\n".join(fill(line, width, indent) for line in text.splitlines())

    def _split_lines(self, text: str, width: int) -> list[str]:
        split = super()._split_lines  # (super() does not work inside a comprehension)
        return [out for line in text.splitlines() for out in split(line, width)]


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "{}"
    return "none" if value is None else str(value)


_METAVARS = {int: "INT", float: "FLOAT", str: "TEXT", list: "A,B,...", dict: "K=V,..."}


def _metavar(hint: Any) -> str:
    if get_origin(hint) is Literal:  # argparse's own spelling of choices
        return "{" + ",".join(map(str, get_args(hint))) + "}"
    if get_origin(hint) in (Union, types.UnionType):
        members = [a for a in get_args(hint) if a is not type(None)]
        return "|".join(_metavar(a) for a in members)
    return _METAVARS.get(get_origin(hint) or hint, type_name(hint).upper())


def flag_converter(hint: Any) -> Callable[[str], Any]:
    """A function str -> value of type ``hint`` raising ArgumentTypeError with the type named."""

    def convert(text: str) -> Any:
        try:
            return _convert(text, hint)
        except (ValueError, TypeError, yaml.YAMLError) as err:
            raise argparse.ArgumentTypeError(
                f"expected {type_name(hint)}, got {text!r}"
                + (f" ({err})" if str(err) and "invalid literal" not in str(err) else "")
            ) from err

    convert.__name__ = type_name(hint)
    return convert


def _convert(text: str, hint: Any) -> Any:
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        if type(None) in args and text.lower() in ("none", "null"):
            return None
        members = [a for a in args if a is not type(None)]
        # a comma means a list where the field allows one; str is the fallback of last resort
        members.sort(key=lambda a: (get_origin(a) is not list or "," not in text, a is str))
        error: Exception = ValueError("")
        for member in members:
            if get_origin(member) is list and "," not in text and len(members) > 1:
                continue
            try:
                return _convert(text, member)
            except (ValueError, TypeError) as err:
                error = err if str(err) and not str(error) else error
        raise error
    if hint in (int, float):
        return hint(text)
    if hint is str or origin is Literal:  # Config names a Literal's bad value with the valid ones
        return text
    if origin is list:
        return [_convert(t.strip(), args[0]) for t in text.split(",") if t.strip()]
    if origin is dict:
        return _parse_dict(text, args[1])
    if hint is Any:
        return yaml.safe_load(text)
    raise TypeError(f"no command-line parser for {type_name(hint)}")


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets, so ``age={gamma: 2, alpha: 1},mask=...`` works."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += (ch in "[{(") - (ch in "]})")
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return [p.strip() for p in [*parts, text[start:]] if p.strip()]


def _parse_dict(text: str, value_hint: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in _split_top(text):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{item!r} is not KEY=VALUE")
        out[key.strip()] = _convert(value.strip(), value_hint)
    return out
