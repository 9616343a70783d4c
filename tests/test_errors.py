"""kit's exceptions form one hierarchy: every error kit raises on purpose is a ``kit.KitError``
and the built-in type older code catches, and the hierarchy is documented where users look."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import kit
from kit import errors
from kit.io import OutputError, read_csv_text
from kit.losses import LOSSES
from kit.registry import UnknownName

ROOT = Path(__file__).resolve().parents[1]

#: exceptions kit defines that are signals, not errors about the user's input
SIGNALS = {"Measured", "Pruned", "Terminated"}


def _defined_exceptions() -> dict[str, str]:
    """Every public exception class defined in kit (by its source): name -> module path."""
    found: dict[str, str] = {}
    for path in (ROOT / "kit").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            bases = [ast.unparse(b) for b in node.bases]
            if any(
                re.search(r"(Error|Exception|Diverged|Interrupt|Unavailable|Name)$", b)
                for b in bases
            ):
                found[node.name] = str(path.relative_to(ROOT))
    return found


def test_every_error_kit_defines_is_a_kit_error_and_a_builtin():
    found = _defined_exceptions()
    assert {"DataError", "ConfigError", "UserCodeError", "OutputError", "UnknownName"} <= set(found)
    for name, where in found.items():
        if name in SIGNALS:
            continue
        module = where.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        cls = getattr(__import__(module, fromlist=[name]), name)
        assert issubclass(cls, kit.KitError), f"{where}: {name} is not a kit.KitError"
        builtin = [b for b in cls.__mro__ if b.__module__ == "builtins" and b is not Exception]
        assert len(builtin) > 1, f"{name} subclasses no built-in error type besides Exception"


def test_the_hierarchy_is_documented_in_errors_py_and_troubleshooting():
    page = (ROOT / "docs" / "troubleshooting.md").read_text(encoding="utf-8")
    for name in set(_defined_exceptions()) - SIGNALS:
        assert name in (errors.__doc__ or ""), f"kit/errors.py's docstring lacks {name}"
        assert re.search(rf"`kit\.(\w+\.)?{name}`", page), f"troubleshooting.md lacks {name}"


def test_except_kit_error_catches_data_config_registry_and_output_errors(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "train.csv").write_text("id,gender\n1,F\n")
    cases = [
        lambda: kit.read_train(tmp_path),  # a missing column
        lambda: kit.read_train(tmp_path / "nowhere"),  # no data folder
        lambda: kit.Config(epochs=0).validate(),
        lambda: kit.Config.from_dict({"epochs": "ten"}),
        lambda: LOSSES.get("nope"),
    ]
    utf16 = tmp_path / "u.csv"
    utf16.write_bytes("a,b\n".encode("utf-16-le"))
    cases.append(lambda: read_csv_text(utf16))
    for case in cases:
        with pytest.raises(kit.KitError):
            case()
    assert issubclass(kit.DataError, ValueError) and issubclass(OutputError, OSError)
    assert issubclass(UnknownName, ValueError) and issubclass(kit.ConfigError, ValueError)
