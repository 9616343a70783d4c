"""kit's modules import downwards only, along the layer table of docs/architecture.md.

The table is parsed from the page, so the picture readers see and the imports the code makes
cannot drift apart. Every ``import`` / ``from ... import`` anywhere in a module is read with
``ast`` (module level, inside functions, under ``if TYPE_CHECKING:``), and the check fails on:

- an import of a module in a higher layer than the importer's (same layer is allowed);
- an import cycle between kit modules (also within one layer);
- an import of a kit module inside a function or class body: a late import that dodges a
  cycle is a design bug, not a fix;
- a dynamic import (``importlib.import_module`` / ``__import__``) inside kit, which hides a
  dependency from this very check;
- ``import kit`` / ``from kit import name`` inside kit: the facade re-exports every layer, so
  going through it hides the real dependency;
- a module that the table does not place in any layer.

``if TYPE_CHECKING:`` imports count like any other: they never run, so they cannot make a
runtime cycle, but a lower layer that names a higher layer's type still knows about it, and
the table is meant to be true for the reader as much as for the interpreter.

``kit/__init__.py`` is left out on purpose: it is the public facade above every layer
(``kit.fit``, ``kit.Config``, ...), re-exporting names lazily through ``importlib`` on first
attribute access, and no kit module may import it (see above).

Importing ``kit.a.b`` also runs ``kit/a/__init__.py``; a module outside package ``kit.a``
therefore depends on ``kit.a`` as well as on ``kit.a.b``, and both edges are checked.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHITECTURE = ROOT / "docs" / "architecture.md"

# The layer table: a markdown table whose header row starts with "| layer |".
_TABLE = re.compile(r"^\|\s*layer\s*\|.*\n\|[-| :]+\|\n((?:\|.*\|\n?)+)", re.M | re.I)
_MODULE = re.compile(r"`([A-Za-z_][\w.]*)`")


@dataclass(frozen=True)
class Import:
    """One import of a kit module by another, where it is written."""

    importer: str
    target: str
    file: str
    line: int
    top_level: bool  # False: inside a function or class body
    written: bool = True  # False: the package whose __init__ importing ``target`` runs


def layer_table(markdown: str) -> dict[str, int]:
    """``{module prefix: layer}`` from the page's layer table (backticked names, 2nd column)."""
    found = _TABLE.search(markdown)
    assert found, "docs/architecture.md has no layer table (a header row '| layer | ... |')"
    table: dict[str, int] = {}
    for row in found[1].strip().splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        layer = int(cells[0])
        for name in _MODULE.findall(cells[1]):
            assert name not in table, f"layer table names {name} twice"
            table[name] = layer
    return table


def layer_of(module: str, table: dict[str, int]) -> int | None:
    """The layer of the longest table entry that is ``module`` or one of its packages."""
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in table:
            return table[prefix]
    return None


def module_names(package_dir: Path, package: str) -> dict[str, Path]:
    """``{dotted name: file}`` of every module under ``package_dir`` (its __init__ left out)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir).with_suffix("")
        parts = [package, *rel.parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if len(parts) > 1:  # the package's own __init__ is the facade
            modules[".".join(parts)] = path
    return modules


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, package: str, known: set[str]) -> None:
        self.module, self.is_package, self.package, self.known = module, is_package, package, known
        self.imports: list[tuple[str, int, bool]] = []  # (target, line, top level)
        self.dynamic: list[int] = []
        self.depth = 0

    def _body(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = _body

    def _add(self, target: str, node: ast.AST) -> None:
        if target == self.package or target.startswith(self.package + "."):
            self.imports.append((target, node.lineno, self.depth == 0))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:  # relative: resolve against this module's package
            here = self.module.split(".")
            anchor = here if self.is_package else here[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join([*anchor, base] if base else anchor)
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            self._add(sub if sub in self.known else base, node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in {"import_module", "__import__"}:
            self.dynamic.append(node.lineno)
            arg = node.args[0] if node.args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                self._add(arg.value, node)
        self.generic_visit(node)


def scan(package_dir: Path, package: str = "kit") -> tuple[list[Import], list[str]]:
    """Every import between the package's modules, and the dynamic-import problems found."""
    modules = module_names(package_dir, package)
    known = set(modules)
    imports: list[Import] = []
    problems: list[str] = []
    for module, path in modules.items():
        rel = f"{package}/{path.relative_to(package_dir).as_posix()}"
        collector = _Collector(module, path.name == "__init__.py", package, known)
        collector.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        problems += [
            f"{rel}:{line}: {module} imports dynamically (importlib / __import__): import kit "
            "modules with a plain import statement so that the layering is visible"
            for line in collector.dynamic
        ]
        for target, line, top in collector.imports:
            # kit.a.b from outside package kit.a also runs kit/a/__init__.py
            imports.append(Import(module, target, rel, line, top))
            parts = target.split(".")
            for n in range(2, len(parts)):
                dep = ".".join(parts[:n])
                if dep in known and not (module == dep or module.startswith(dep + ".")):
                    imports.append(Import(module, dep, rel, line, top, written=False))
    return imports, problems


def cycles(imports: list[Import]) -> list[list[str]]:
    """Each strongly connected group of two or more modules (or a module importing itself)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        graph.setdefault(imp.importer, set()).add(imp.target)
        graph.setdefault(imp.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in graph[v]:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(groups)


def violations(package_dir: Path, table: dict[str, int], package: str = "kit") -> list[str]:
    """One line per broken rule (see the module docstring), sorted; empty when all is well."""
    imports, problems = scan(package_dir, package)
    for module in module_names(package_dir, package):
        if layer_of(module, table) is None:
            problems.append(
                f"{module} is in no layer: add it to the layer table of docs/architecture.md"
            )
    seen = set()
    for imp in imports:
        where = f"{imp.file}:{imp.line}"
        if imp.target == package:
            problems.append(
                f"{where}: {imp.importer} imports the facade '{package}': import the module "
                "that defines the name"
            )
            continue
        if not imp.top_level and imp.written:
            problems.append(
                f"{where}: {imp.importer} imports {imp.target} inside a function or class: "
                "move it to the top of the module (a late import that dodges a cycle is a bug)"
            )
        src, dst = layer_of(imp.importer, table), layer_of(imp.target, table)
        key = (where, dst)  # one line per written import and layer (not per package run)
        if src is not None and dst is not None and dst > src and key not in seen:
            seen.add(key)
            problems.append(
                f"{where}: upward import {imp.importer} (layer {src}) -> {imp.target} (layer {dst})"
            )
    for group in cycles(imports):
        problems.append(
            f"import cycle between {', '.join(group)}; for example: {_one_cycle(group, imports)}"
        )
    return sorted(set(problems))


def _one_cycle(group: list[str], imports: list[Import]) -> str:
    """The shortest way round from the group's first module back to it, with the import lines."""
    members = set(group)
    edges: dict[str, dict[str, Import]] = {}
    for imp in imports:
        if imp.importer in members and imp.target in members:
            edges.setdefault(imp.importer, {}).setdefault(imp.target, imp)
    start = group[0]
    paths: dict[str, list[Import]] = {start: []}
    frontier = [start]
    while frontier:  # breadth first, so the first way back is a shortest one
        nxt = []
        for v in frontier:
            for w, imp in sorted(edges.get(v, {}).items()):
                if w == start:
                    steps = [*paths[v], imp]
                    return " -> ".join([start] + [f"{i.target} ({i.file}:{i.line})" for i in steps])
                if w not in paths:
                    paths[w] = [*paths[v], imp]
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {start}")  # cannot happen for a cycle group


# ---- the checker itself, on planted trees -----------------------------------------------------

_PLANTED_TABLE = """
| layer | modules |
| --- | --- |
| 0 | `pkg.low` |
| 1 | `pkg.mid`, `pkg.other` |
| 2 | `pkg.high` |
"""


def _plant(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


def test_the_table_parser_reads_layers_and_longest_prefixes():
    table = layer_table(_PLANTED_TABLE)
    assert table == {"pkg.low": 0, "pkg.mid": 1, "pkg.other": 1, "pkg.high": 2}
    assert layer_of("pkg.mid.sub.deep", table) == 1
    assert layer_of("pkg.middle", table) is None  # a prefix of a name is not its package


def test_a_clean_planted_tree_has_no_violations(tmp_path: Path):
    root = _plant(
        tmp_path,
        {
            "low.py": "import os\n",
            "mid/__init__.py": "from .core import thing\n",
            "mid/core.py": "from pkg.low import x\nfrom typing import TYPE_CHECKING\n",
            "other.py": "import pkg.mid.core\n",  # same layer, acyclic: allowed
            "high.py": "from pkg import low\nfrom pkg.mid import core\n",
        },
    )
    # `from pkg import low` names the module pkg.low, not the facade
    assert violations(root, layer_table(_PLANTED_TABLE), "pkg") == []


def test_a_planted_upward_import_is_reported(tmp_path: Path):
    root = _plant(tmp_path, {"low.py": "from pkg.high import run\n", "high.py": "run = 1\n"})
    problems = violations(root, layer_table(_PLANTED_TABLE), "pkg")
    assert problems == ["pkg/low.py:1: upward import pkg.low (layer 0) -> pkg.high (layer 2)"]


def test_a_planted_upward_import_under_type_checking_or_relative_is_reported(tmp_path: Path):
    root = _plant(
        tmp_path,
        {
            "low.py": "import typing\nif typing.TYPE_CHECKING:\n    from .mid import a\n",
            "mid/__init__.py": "a = 1\n",
        },
    )
    problems = violations(root, layer_table(_PLANTED_TABLE), "pkg")
    assert problems == ["pkg/low.py:3: upward import pkg.low (layer 0) -> pkg.mid (layer 1)"]


def test_a_planted_cycle_and_a_late_import_are_reported(tmp_path: Path):
    root = _plant(
        tmp_path,
        {
            "mid/__init__.py": "",
            "mid/a.py": "import pkg.other\n",
            "other.py": "def f():\n    from pkg.mid.a import g\n",
        },
    )
    problems = violations(root, layer_table(_PLANTED_TABLE), "pkg")
    assert problems == [
        "import cycle between pkg.mid.a, pkg.other; for example: pkg.mid.a -> pkg.other "
        "(pkg/mid/a.py:1) -> pkg.mid.a (pkg/other.py:2)",
        "pkg/other.py:2: pkg.other imports pkg.mid.a inside a function or class: move it to "
        "the top of the module (a late import that dodges a cycle is a bug)",
    ]


def test_a_cycle_through_a_package_init_is_reported(tmp_path: Path):
    # importing pkg.mid.b runs pkg/mid/__init__.py, which imports pkg.other
    root = _plant(
        tmp_path,
        {
            "mid/__init__.py": "import pkg.other\n",
            "mid/b.py": "",
            "other.py": "import pkg.mid.b\n",
        },
    )
    problems = violations(root, layer_table(_PLANTED_TABLE), "pkg")
    assert problems == [
        "import cycle between pkg.mid, pkg.other; for example: pkg.mid -> pkg.other "
        "(pkg/mid/__init__.py:1) -> pkg.mid (pkg/other.py:1)"
    ]


def test_unplaced_modules_facade_and_dynamic_imports_are_reported(tmp_path: Path):
    root = _plant(
        tmp_path,
        {
            "low.py": "import pkg\n",
            "stray.py": "import importlib\nm = importlib.import_module(name)\n",
        },
    )
    problems = violations(root, layer_table(_PLANTED_TABLE), "pkg")
    assert problems == [
        "pkg.stray is in no layer: add it to the layer table of docs/architecture.md",
        "pkg/low.py:1: pkg.low imports the facade 'pkg': import the module that defines the name",
        "pkg/stray.py:2: pkg.stray imports dynamically (importlib / __import__): import kit "
        "modules with a plain import statement so that the layering is visible",
    ]


# ---- kit itself ---------------------------------------------------------------------------------


def test_the_layer_table_places_every_kit_module():
    table = layer_table(ARCHITECTURE.read_text(encoding="utf-8"))
    stale = [
        name
        for name in table
        if not any(m == name or m.startswith(name + ".") for m in module_names(ROOT / "kit", "kit"))
    ]
    assert not stale, f"docs/architecture.md's layer table names modules kit lacks: {stale}"


def test_kit_imports_only_downwards_and_without_cycles():
    table = layer_table(ARCHITECTURE.read_text(encoding="utf-8"))
    problems = violations(ROOT / "kit", table)
    assert not problems, (
        f"{len(problems)} layering problems (layers from docs/architecture.md):\n"
        + "\n".join(problems)
    )
