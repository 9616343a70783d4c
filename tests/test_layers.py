"""kit's modules import downwards only, along the layer table of docs/architecture.md.

The rules are import-linter contracts in pyproject.toml (``[tool.importlinter]``), checked by
``lint-imports``: a ``layers`` contract (every import, also inside a function or under
``if TYPE_CHECKING:``, goes to the importer's own layer or below; ``exhaustive``: every module of
kit is in a layer) and an ``acyclic_siblings`` contract (no import cycle between kit's modules
or packages, so a late import inside a function that closes a cycle is reported too). A late
import that closes no cycle is allowed: that is how a command answers ``--help`` without
loading torch (docs/architecture.md).

Two rules import-linter cannot see stay here, checked with ``ast`` in a few lines: a dynamic
import (``importlib.import_module`` / ``__import__``) inside kit hides a dependency from the
contracts, and ``import kit`` / ``from kit import name`` inside kit goes through the facade,
which re-exports every layer (import-linter records it as an import of the root package, which
a layers contract with ``containers`` does not check).

The docs' table and the contract are one list: a test holds them equal.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "architecture.md"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# The layer table: a markdown table whose header row starts with "| layer |".
_TABLE = re.compile(r"^\|\s*layer\s*\|.*\n\|[-| :]+\|\n((?:\|.*\|\n?)+)", re.M | re.I)
_MODULE = re.compile(r"`kit\.([A-Za-z_][\w.]*)`")


def _lint_imports(cwd: Path, config: Path | None = None) -> subprocess.CompletedProcess[str]:
    args = [str(LINT_IMPORTS), "--no-cache", *([str(config)] if config else [])]
    # the package is found on the path, from the folder it lies in
    env = {"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def docs_layers() -> list[list[str]]:
    """The layer table of docs/architecture.md, top layer first: the module names of each row
    (relative to ``kit``)."""
    found = _TABLE.search(ARCHITECTURE.read_text(encoding="utf-8"))
    assert found, "docs/architecture.md has no layer table (a header row '| layer | ... |')"
    rows = {}
    for row in found[1].strip().splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        rows[int(cells[0])] = _MODULE.findall(cells[1])
    return [rows[k] for k in sorted(rows, reverse=True)]


def contract_layers() -> list[list[str]]:
    """The ``layers`` contract of pyproject.toml, top layer first."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (contract,) = [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return [[m.strip() for m in re.split(r"[:|]", layer)] for layer in contract["layers"]]


def hidden_imports(package_dir: Path, package: str = "kit") -> list[str]:
    """What the contracts cannot see: dynamic imports and imports of the facade ``package``
    itself, one line each (``file:line: what``)."""
    problems = []
    for path in sorted(package_dir.rglob("*.py")):
        if path == package_dir / "__init__.py":  # the facade itself imports lazily
            continue
        where = f"{package}/{path.relative_to(package_dir).as_posix()}"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            func = getattr(node, "func", None)
            name = getattr(func, "attr", None) or getattr(func, "id", None)
            if isinstance(node, ast.Call) and name in {"import_module", "__import__"}:
                problems.append(
                    f"{where}:{node.lineno}: dynamic import: import kit modules with a plain "
                    "import statement so that lint-imports sees the dependency"
                )
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            facade = package in names or (
                isinstance(node, ast.ImportFrom)
                and node.module == package
                and not node.level
                and not all(_is_submodule(package_dir, a.name) for a in node.names)
            )
            if facade:
                problems.append(
                    f"{where}:{node.lineno}: imports the facade {package!r}: import the module "
                    "that defines the name"
                )
    return problems


def _is_submodule(package_dir: Path, name: str) -> bool:
    return (package_dir / name).is_dir() or (package_dir / f"{name}.py").is_file()


# ---- the contracts and the small checks, on planted trees ----------------------------------

_PLANTED_CONFIG = """
[importlinter]
root_package = planted

[importlinter:contract:layers]
name = layers
type = layers
containers = planted
exhaustive = true
layers =
    high
    mid : other : sub
    low

[importlinter:contract:cycles]
name = cycles
type = acyclic_siblings
ancestors = planted
"""


def _plant(tmp_path: Path, files: dict[str, str]) -> subprocess.CompletedProcess[str]:
    root = tmp_path / "planted"
    layers = ["__init__.py", "high.py", "mid.py", "other.py", "sub/__init__.py", "low.py"]
    for name, text in {**dict.fromkeys(layers, ""), **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    config = tmp_path / ".importlinter"
    config.write_text(_PLANTED_CONFIG, encoding="utf-8")
    return _lint_imports(tmp_path, config)


_TYPE_CHECKING_UP = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import planted.high\n"
_LATE_CYCLE = {"mid.py": "import planted.other\n", "other.py": "def f():\n    import planted.mid\n"}
# importing planted.sub.b runs planted/sub/__init__.py, which imports planted.mid
_INIT_CYCLE = {"mid.py": "import planted.sub.b\n", "sub/__init__.py": "import planted.mid\n"}


@pytest.mark.parametrize(
    ("files", "reported"),
    [
        ({}, None),  # a clean tree
        ({"low.py": "import planted.high\n"}, "planted.low -> planted.high"),  # upward
        (
            {"low.py": "def f():\n    from planted import mid\n"},
            "planted.low -> planted.mid",
        ),  # late upward
        # under TYPE_CHECKING: never runs, but the lower layer still knows the higher one
        ({"low.py": _TYPE_CHECKING_UP}, "planted.low -> planted.high"),
        # a late import inside a function that closes a cycle within a layer
        (_LATE_CYCLE, "- .other -> .mid (1 import)"),
        ({**_INIT_CYCLE, "sub/b.py": ""}, "- .sub -> .mid (1 import)"),
        ({"stray.py": ""}, "planted.stray"),  # a module in no layer
    ],
)
def test_the_contracts_report_a_planted_problem(tmp_path: Path, files, reported):
    result = _plant(tmp_path, files)
    out = result.stdout + result.stderr
    if reported is None:
        assert result.returncode == 0, out
        assert "2 kept, 0 broken" in out
    else:
        assert result.returncode == 1, out
        assert "BROKEN" in out and reported in out, out


def test_dynamic_and_facade_imports_are_reported(tmp_path: Path):
    root = tmp_path / "planted"
    root.mkdir()
    (root / "__init__.py").write_text("import importlib\n")  # the facade may
    (root / "low.py").write_text(
        "import planted\nfrom planted import name\nfrom planted import low\n"
    )
    (root / "stray.py").write_text("import importlib\nm = importlib.import_module(name)\n")
    assert hidden_imports(root, "planted") == [
        "planted/low.py:1: imports the facade 'planted': import the module that defines the name",
        "planted/low.py:2: imports the facade 'planted': import the module that defines the name",
        "planted/stray.py:2: dynamic import: import kit modules with a plain import statement so "
        "that lint-imports sees the dependency",
    ]


# ---- kit itself ---------------------------------------------------------------------------------


def test_kit_keeps_its_import_contracts():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_docs_layer_table_is_the_contract():
    assert docs_layers() == contract_layers(), (
        "docs/architecture.md's layer table and pyproject.toml's [tool.importlinter] layers "
        "differ: a new module gets a row in both"
    )


def test_kit_has_no_dynamic_or_facade_imports():
    assert hidden_imports(ROOT / "kit") == []
