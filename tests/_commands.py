"""Every command a user starts: the recipes and each ``python -m kit...`` module, found on disk
so that a new one is covered without a list to update (tests/test_startup.py,
scripts/bench_startup.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

__all__ = ["NOT_COMMANDS", "ROOT", "kit_commands", "recipe_paths"]

#: modules whose ``__main__`` block only says they are no command, with what to run instead
NOT_COMMANDS = {"kit.inference": "a library; python -m kit.predict predicts from the shell"}


def recipe_paths() -> list[Path]:
    """``recipes/*.py``, sorted."""
    return sorted((ROOT / "recipes").glob("*.py"))


def _runs_as_main(path: Path) -> bool:
    """Whether the module has an ``if __name__ == "__main__":`` block at its top level."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            names = {n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)}
            if "__name__" in names:
                return True
    return False


def kit_commands() -> list[str]:
    """The module names ``python -m`` runs: packages with a ``__main__.py`` and modules with a
    ``__main__`` block, sorted."""
    found = []
    for path in sorted((ROOT / "kit").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if path.name == "__main__.py":
            found.append(".".join(parts[:-1]))
        elif path.name != "__init__.py" and _runs_as_main(path):
            found.append(".".join(parts))
    return sorted(found)
