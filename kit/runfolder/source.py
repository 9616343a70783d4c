"""What re-creates a run from its folder: the git state of the code, a copy of the recipe that
started it and, when the working tree was dirty, the uncommitted changes (docs/run-folder.md).

A recipe written and run before it is committed (a newcomer's normal flow) counts as dirty:
untracked files under ``recipes/`` and ``kit/`` are changes too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kit import io
from kit.runfolder.names import GIT_DIFF, RECIPE

__all__ = ["SOURCE_DIRS", "GitState", "git_state", "recipe_path", "write_source"]

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
    argv0 = sys.argv[0] if argv0 is None else argv0
    path = Path(argv0)
    if path.suffix != ".py" or not path.is_file():
        return None
    resolved = path.resolve()
    return None if _KIT_DIR in resolved.parents else resolved


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
    default :func:`recipe_path`) and, when the working tree is dirty, ``git.diff`` (``git diff
    HEAD`` plus the untracked files under ``recipes/`` and ``kit/``, for ``git apply``).
    Returns the files written."""
    run_dir = Path(run_dir)
    written = []
    source = Path(recipe) if recipe is not None else recipe_path()
    if source is not None and source.is_file():
        written.append(io.write_text(run_dir / RECIPE, source.read_text(encoding="utf-8")))
    state = git_state(cwd)
    if state.dirty:
        top = Path((_git("rev-parse", "--show-toplevel", cwd=cwd) or ".").strip())
        diff = (_git("diff", "HEAD", "--binary", cwd=top) or "") + _untracked_diff(
            top, state.untracked
        )
        if diff:
            written.append(io.write_text(run_dir / GIT_DIFF, diff))
    return written
