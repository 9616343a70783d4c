"""The command-line parser of ``Config``, built from its dataclass fields (never stale).

``--image-size 128 96`` parses two ints (never a list of characters), ``--no-amp`` switches a
boolean off, ``--head-losses age=focal,mask=cross_entropy`` fills a dict, ``none`` clears an
optional field. The help of a field with a ``registry`` kind lists what that registry holds
when the parser is built (losses with the keyword arguments each takes).
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import types
from collections.abc import Callable
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from kit import cli
from kit._config_checks import type_name
from kit.cli import add_debug_flag
from kit.errors import ConfigError
from kit.registry import help_lines

__all__ = ["OTHER", "build_parser", "flag_converter", "namespace_changes", "sections"]

_EXTRA = ("config", "save_config", "debug", "estimate", "find_lr")
#: The description of a parser built without one.
DESCRIPTION = "Train a model."
_PRECEDENCE = (
    "Every field of kit.Config is an option, grouped as in docs/configuration.md; precedence: "
    "recipe < --config FILE < flags."
)
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
        description=f"{description or DESCRIPTION}\n\n{_PRECEDENCE}",
        argument_default=argparse.SUPPRESS,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--config", metavar="FILE", default=None, help="YAML/JSON config file")
    parser.add_argument(
        "--save-config", metavar="FILE", default=None, help="write the resolved config and exit"
    )
    parser.add_argument(
        "--estimate",
        nargs="?",
        const=0,
        type=_count,
        metavar="PICTURES",
        default=None,
        help="measure instead of train: time the face boxes, cache, training steps and TTA "
        "inference on a sample of PICTURES (default 300, 48 with --smoke) at these settings and "
        "print each stage's projected time, peak GPU memory and the cache's disk; no run folder",
    )
    parser.add_argument(
        "--find-lr",
        nargs="?",
        const=0,
        type=_count,
        metavar="STEPS",
        default=None,
        help="learning-rate range test instead of training: STEPS steps (default 200, 30 with "
        "--smoke) with the lr growing exponentially until the loss blows up; writes "
        "lr_find/<name>.png and prints a suggested --lr; no run folder",
    )
    add_debug_flag(parser)
    hints = get_type_hints(type(base))
    by_field, groups = sections(type(base)), {}
    for f in dataclasses.fields(base):
        section = by_field.get(f.name, OTHER)
        if section not in groups:
            groups[section] = parser.add_argument_group(section)
        group = groups[section]
        hint = hints[f.name]
        default = getattr(base, f.name)
        # a closed choice's values are its metavar, like argparse's own choices
        kind = "" if get_origin(hint) is Literal else f"{type_name(hint)}; "
        help_text = f"{f.metadata.get('help', '')} [{kind}default: {_show(default)}]"
        help_text += _registered(f.metadata.get("registry"))
        flag = "--" + f.name.replace("_", "-")
        if hint is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
        elif get_origin(hint) is tuple:
            elems = get_args(hint)
            group.add_argument(
                flag,
                nargs=len(elems),
                type=flag_converter(elems[0]),
                metavar=tuple(type_name(e).upper() for e in elems),
                help=help_text,
            )
        else:
            group.add_argument(
                flag, type=flag_converter(hint), metavar=_metavar(hint), help=help_text
            )
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

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        fill = super()._fill_text  # the hook of argparse's own RawDescriptionHelpFormatter
        return "\n".join(fill(line, width, indent) for line in text.splitlines())

    def _split_lines(self, text: str, width: int) -> list[str]:
        # _split_lines is the hook argparse's own RawTextHelpFormatter overrides
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
    if hint is int:
        return int(text)
    if hint is float:
        return float(text)
    if hint is str:
        return text
    if origin is Literal:  # the config names a value outside it, with the valid ones
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
