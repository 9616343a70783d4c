"""The ``Config`` dataclass: everything a run depends on, with YAML/JSON files and a command line.

Precedence is recipe values < ``--config FILE`` < command-line flags. The command line is built
from :func:`dataclasses.fields`, so a new field is a new flag with its help text automatically.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints

import yaml

from kit import io
from kit._config_checks import check, check_registries, coerce, parse_age_ranges, parse_folds
from kit._config_fields import ROLES, Fields
from kit.errors import ConfigError
from kit.registry import did_you_mean

__all__ = [
    "ROLES",
    "Config",
    "check_registries",
    "fields_with_role",
    "parse_age_ranges",
    "parse_folds",
    "resumable_fields",
    "saved_config",
    "smoke_note",
    "split_fields",
]


@dataclass
class Config(Fields):
    """Every setting of a training run. Defaults train a tiny CPU model on the fixture.

    The fields, with their help, role and registry kind, are declared in
    :class:`kit._config_fields.Fields`; this class adds the files, the checks and the variants.
    """

    # ---- dictionaries and files -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Every field as plain JSON/YAML values (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        """A Config from ``d``; unknown keys and ill-typed values raise ValueError."""
        return cls().replace(**d)

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied, checked like :meth:`from_dict`."""
        hints = _hints()
        unknown = [k for k in changes if k not in hints]
        if unknown:
            raise ConfigError(_unknown_message(unknown[0], "config key"))
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

    # ---- checks and variants ----------------------------------------------------------------
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
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
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


# ---- typing helpers -------------------------------------------------------------------------
def _hints() -> dict[str, Any]:
    return get_type_hints(Config)


def _kind(path: Path) -> str:
    kinds = {".json": "json", ".yaml": "yaml", ".yml": "yaml"}
    if path.suffix.lower() not in kinds:
        raise ConfigError(f"{path}: config files end in .json, .yaml or .yml")
    return kinds[path.suffix.lower()]


def read_mapping(path: str | Path) -> dict[str, Any]:
    """The raw key -> value mapping of a YAML or JSON config file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} not found")
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if _kind(path) == "json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: not valid {_kind(path).upper()} ({err})") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def apply_file(cfg: Config, path: str | Path, *, saved: bool = False) -> Config:
    """``cfg`` with the keys present in the file at ``path`` replaced (others kept); with
    ``saved``, the file is a run folder's config.json, read by :func:`saved_config`."""
    try:
        mapping = read_mapping(path)
        return cfg.replace(**(saved_config(mapping) if saved else mapping))
    except ValueError as err:
        text = str(err)  # read_mapping's own messages already start with the path
        raise ConfigError(text if text.startswith(str(path)) else f"{path}: {text}") from err


def _unknown_message(key: str, what: str) -> str:
    close = did_you_mean(key, _hints(), n=3, cutoff=0.5)
    return f"unknown {what} {key!r}{close}; valid keys: {', '.join(_hints())}"
