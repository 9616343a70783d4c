"""What re-creates a run from its folder: the git state of the code, a copy of the recipe that
started it (or the code cells of the Jupyter notebook that did) and, when the working tree was
dirty, the uncommitted changes (docs/run-folder.md).

A recipe written and run before it is committed (a newcomer's normal flow) counts as dirty:
untracked files under ``recipes/`` and ``kit/`` are changes too.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kit import io
from kit.progress import in_notebook
from kit.runfolder.names import GIT_DIFF, NOTEBOOK, RECIPE

__all__ = [
    "SOURCE_DIRS",
    "GitState",
    "git_state",
    "notebook_cells",
    "notebook_module",
    "recipe_path",
    "write_source",
]

#: Folders (from the repository's top) whose untracked files make a working tree dirty.
SOURCE_DIRS = ("recipes", "kit")
_KIT_DIR = Path(__file__).resolve().parents[1]


def _git(*args: str, cwd: Path | None = None, ok: tuple[int, ...] = (0,)) -> str | None:
    """git's stdout, or None without git, outside a repository, or on another exit code."""
    try:
        out = subprocess.run(
            ["git", *args], capture_output=True, text=True, timeout=10, cwd=cwd, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode in ok else None


@dataclass(frozen=True)
class GitState:
    """The cwd's repository: commit, whether anything differs from it, the untracked sources."""

    commit: str | None
    dirty: bool | None  # None: not a git repository (or no git)
    untracked: tuple[str, ...]  # under SOURCE_DIRS, relative to the top


def git_state(cwd: Path | None = None) -> GitState:
    """The :class:`GitState` of the repository holding ``cwd`` (the current folder if None)."""
    changed = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
    if changed is None:
        return GitState(None, None, ())
    pathspecs = [f":(top){d}" for d in SOURCE_DIRS]
    others = _git("ls-files", "--others", "--exclude-standard", "--", *pathspecs, cwd=cwd) or ""
    untracked = tuple(sorted(line for line in others.splitlines() if line))
    commit = (_git("rev-parse", "HEAD", cwd=cwd) or "").strip() or None
    return GitState(commit, bool(changed.strip()) or bool(untracked), untracked)


def recipe_path(argv0: str | None = None) -> Path | None:
    """The recipe that started this process: ``sys.argv[0]`` when it is a ``.py`` file that is
    not part of kit itself (``python -m kit.x``, ``python -c`` and notebooks have none)."""
    if argv0 is None and in_notebook():  # sys.argv[0] is the kernel's launcher script
        return None
    argv0 = sys.argv[0] if argv0 is None else argv0
    path = Path(argv0)
    if path.suffix != ".py" or not path.is_file():
        return None
    resolved = path.resolve()
    return None if _KIT_DIR in resolved.parents else resolved


def notebook_cells() -> list[str] | None:
    """The code cells this Jupyter kernel has run, in the order it ran them (IPython's
    ``In``, magics already turned into Python), the running one included; None outside one."""
    if not in_notebook():
        return None
    shell = sys.modules["IPython"].get_ipython()
    return [cell for cell in shell.user_ns.get("In", [])[1:] if cell.strip()]


def _defines(node: ast.stmt) -> bool:
    """Whether a top-level statement only defines or registers (safe to run at import): an
    import, a def or class (its decorators register it), a constant, or a ``*register*(...)``
    call such as ``kit.PRESETS.register("x", fn)``."""
    kinds = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    if isinstance(node, kinds):
        return True
    if isinstance(node, ast.Assign):
        try:
            ast.literal_eval(node.value)
        except ValueError:
            return False
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        return "register" in ast.unparse(node.value.func)
    return False


def notebook_module(cells: list[str]) -> str:
    """The cells as one Python file, like a recipe: what defines or registers (imports, defs,
    classes, constants, ``register`` calls) at the top, in cell order, so that importing the
    file makes a registered model, head, loss or preset known again; everything else (the
    training, the ledger) under ``if __name__ == "__main__":``, so that running it runs the
    notebook. A cell that is not valid Python is kept as a comment."""
    top: list[str] = []
    rest: list[str] = []
    for k, cell in enumerate(cells, 1):
        tag = f"# In[{k}]"
        try:
            body = ast.parse(cell).body
        except SyntaxError:
            top += [f"{tag}: not Python, kept as a comment", *(f"# {x}" for x in cell.splitlines())]
            continue
        lines = cell.splitlines()
        defined, ran = [tag], [f"    {tag}"]
        end = 0
        for node in body:  # each statement with the comments and blank lines above it
            text, end = lines[end : node.end_lineno], node.end_lineno
            if _defines(node):
                defined += text
            else:
                ran += [f"    {x}" if x.strip() else "" for x in text]
        top += [*defined, ""] if len(defined) > 1 else []
        rest += ran if len(ran) > 1 else []
    head = [
        "# The code cells of the Jupyter notebook that started this run, saved by kit.",
        "# Imported, it defines and registers what the cells defined; run, it runs them all.",
        "",
    ]
    main = ['if __name__ == "__main__":', *rest] if rest else []
    return "\n".join([*head, *top, *main]).rstrip() + "\n"


def _untracked_diff(top: Path, paths: tuple[str, ...]) -> str:
    """Untracked files as new-file patches, so ``git apply`` re-creates them too."""
    return "".join(
        _git("diff", "--no-index", "--", os.devnull, p, cwd=top, ok=(0, 1)) or "" for p in paths
    )


def write_source(
    run_dir: str | os.PathLike[str],
    recipe: str | os.PathLike[str] | None = None,
    cwd: Path | None = None,
) -> list[Path]:
    """Store what re-creates the run in ``run_dir``: ``recipe.py`` (a copy of ``recipe``, by
    default :func:`recipe_path`), or in a Jupyter kernel ``notebook.py`` (its code cells, see
    :func:`notebook_module`), and, when the working tree is dirty, ``git.diff`` (``git diff
    HEAD`` plus the untracked files under ``recipes/`` and ``kit/``, for ``git apply``).
    Returns the files written."""
    run_dir = Path(run_dir)
    written = []
    source = Path(recipe) if recipe is not None else recipe_path()
    if source is not None and source.is_file():
        written.append(io.write_text(run_dir / RECIPE, source.read_text(encoding="utf-8")))
    cells = notebook_cells() if recipe is None else None
    if cells:
        written.append(io.write_text(run_dir / NOTEBOOK, notebook_module(cells)))
    state = git_state(cwd)
    if state.dirty:
        top = Path((_git("rev-parse", "--show-toplevel", cwd=cwd) or ".").strip())
        diff = (_git("diff", "HEAD", "--binary", cwd=top) or "") + _untracked_diff(
            top, state.untracked
        )
        if diff:
            written.append(io.write_text(run_dir / GIT_DIFF, diff))
    return written
