"""The run's own code: the pieces a recipe or notebook registered (model, head, loss, preset,
TTA view, face detector, ...) and where they live, so that every tool after training
(``kit.predict``, ``kit.ensemble``, ``kit.score``, ``--resume``, ``kit.tune``) finds them in a
fresh process from the run folder alone.

At the start of a run, :func:`write_code` records in ``env.json`` (``code``) each registered
piece the config names that kit itself does not define (its registry kind, name, module and
file) and copies the file of each such module, other than the recipe itself (``recipe.py``
already), into the run folder's ``code/`` folder. :func:`ensure_run_code` makes a run's
pieces available again: when the config names one the registries lack, it imports the run's
code (:func:`load_run_code`), and when that does not register it either, it fails with one
message naming the piece and where it was defined.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import re
import shutil
import sys
import sysconfig
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kit._config_checks import check_model_name, check_registries
from kit.registry import REGISTRIES, definition
from kit.runfolder.names import CODE_DIR, ENV, RECIPE
from kit.runfolder.read import read_env
from kit.runfolder.source import recipe_path

__all__ = ["code_files", "ensure_run_code", "load_run_code", "registered_pieces", "write_code"]


def _origin(entry: Any) -> str | None:
    """The module that defined a registry entry (:func:`kit.registry.definition`)."""
    return getattr(definition(entry), "__module__", None)


def _kit_module(module: str) -> bool:
    return module == "kit" or module.startswith("kit.")


def _names_in(cfg: Any) -> set[str]:
    """Every word of the config's values that could name a registry entry: the model, and
    the tokens of the registry fields (a loss spec ``0.5*poly1+0.5*focal`` names two)."""
    words = {str(cfg.model)}
    for f in dataclasses.fields(cfg):
        if f.metadata.get("registry"):
            value = getattr(cfg, f.name)
            text = " ".join(map(str, value.values())) if isinstance(value, dict) else str(value)
            words |= set(re.findall(r"[A-Za-z_][\w.-]*", text))
    return words


def registered_pieces(cfg: Any) -> list[dict[str, Any]]:
    """The registered pieces ``cfg`` names that kit does not define: ``{"kind", "name",
    "module", "file"}`` each (``file``: None for code typed into a notebook or shell)."""
    words, pieces = _names_in(cfg), []
    for kind, registry in sorted(REGISTRIES.items()):
        for name, entry in registry.items():
            module = _origin(entry)
            if name not in words or module is None or _kit_module(module):
                continue
            path = getattr(sys.modules.get(module), "__file__", None)
            file = str(Path(path).resolve()) if path else None
            pieces.append({"kind": kind, "name": name, "module": module, "file": file})
    return pieces


def _local_modules(folders: set[Path]) -> dict[str, Path]:
    """The imported modules whose file lies directly in one of ``folders`` (a recipe's
    ``from baseline import config``), by name; ``__main__`` (the recipe itself) left out."""
    found = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name == "__main__" or not path or not path.endswith(".py") or _kit_module(name):
            continue
        resolved = Path(path).resolve()
        if resolved.parent in folders:
            found[name] = resolved
    return found


def _installed() -> set[Path]:
    """The folders of the standard library and installed packages."""
    paths = sysconfig.get_paths()
    return {Path(paths[k]).resolve() for k in ("stdlib", "platstdlib", "purelib", "platlib")}


def write_code(
    run_dir: str | os.PathLike[str], cfg: Any, recipe: Path | None = None
) -> list[dict[str, Any]]:
    """Copy into ``run_dir/code/`` the file of every module that defined a piece ``cfg``
    names, and of every module imported from its folder or the folder of ``recipe`` (the
    recipe's own, copied as ``recipe.py``; by default ``sys.argv[0]``'s): what the run's code
    imports. Returns the pieces, for ``env.json``'s ``code``."""
    pieces = registered_pieces(cfg)
    recipe = recipe_path() if recipe is None else recipe
    folders = {Path(p["file"]).parent for p in pieces if p["file"]}
    folders |= {recipe.resolve().parent} if recipe is not None else set()
    folders -= _installed()  # a piece of an installed package: that package is not copied
    kit_dir = Path(__file__).resolve().parents[1]
    modules = {
        name: path
        for name, path in _local_modules(folders).items()
        if kit_dir not in path.parents and "." not in name
    }
    modules |= {
        p["module"]: Path(p["file"])
        for p in pieces
        if p["file"] and p["module"] != "__main__" and "." not in p["module"]
    }
    if recipe is not None:
        modules = {n: f for n, f in modules.items() if f != recipe.resolve()}
    for name, path in sorted(modules.items()):
        target = Path(run_dir) / CODE_DIR / f"{name}.py"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return pieces


def code_files(run_dir: str | os.PathLike[str]) -> list[Path]:
    """The run's code executed by :func:`load_run_code`: ``recipe.py`` first, then any other
    ``.py`` file at the top of the run folder (a notebook's source)."""
    run_dir = Path(run_dir)
    files = sorted(p for p in run_dir.glob("*.py") if p.is_file() and p.name != RECIPE)
    recipe = run_dir / RECIPE
    return ([recipe] if recipe.is_file() else []) + files


@contextmanager
def _on_path(folder: Path) -> Iterator[None]:
    """``folder`` first on ``sys.path`` (when it exists), so the recipe's own imports of the
    modules copied there resolve."""
    if not folder.is_dir():
        yield
        return
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))


def load_run_code(run_dir: str | os.PathLike[str]) -> list[Path]:
    """Import the run's code: the modules copied into ``code/`` (by name, unless already
    imported) and :func:`code_files`, each as its own module (under a name of its own, so two
    runs' ``recipe.py`` never meet; a recipe trains only under ``if __name__ ==
    "__main__"``). Returns the files imported; ValueError naming the file that failed."""
    run_dir = Path(run_dir).resolve()
    code_dir, done = run_dir / CODE_DIR, []
    with _on_path(code_dir):
        for path in sorted(code_dir.glob("*.py")) if code_dir.is_dir() else []:
            if path.stem not in sys.modules:
                _run(path, lambda p=path: _import_file(p, p.stem))
                done.append(path)
        for path in code_files(run_dir):
            digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
            name = f"kit_run_{digest}_{path.stem}"
            if name not in sys.modules:
                _run(path, lambda p=path, n=name: _import_file(p, n))
                done.append(path)
    return done


def _import_file(path: Path, name: str) -> None:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


def _run(path: Path, load: Any) -> None:
    try:
        load()
    except Exception as err:
        raise ValueError(
            f"importing the run's code {path} failed ({type(err).__name__}: {err}); fix or "
            "restore that file (it is a copy of the code the run trained with)"
        ) from err


def _missing(cfg: Any) -> str | None:
    """Why ``cfg`` names a piece no registry (or model source) has now, or None."""
    try:
        check_registries(cfg, require=False)
        check_model_name(cfg.model)
    except ValueError as err:
        return str(err)
    return None


def ensure_run_code(run_dir: str | os.PathLike[str], cfg: Any) -> None:
    """Make every piece ``cfg`` (the run's config) names available: if one is missing, import
    the run's code (:func:`load_run_code`). ValueError naming the piece and where it was
    defined when the run's code does not register it either."""
    if _missing(cfg) is None:
        return
    run_dir = Path(run_dir)
    loaded = load_run_code(run_dir)
    why = _missing(cfg)
    if why is None:
        return
    try:
        pieces = read_env(run_dir).get("code") or []
    except (OSError, ValueError):
        pieces = []
    where = "; ".join(
        f"{p.get('kind')} {p.get('name')!r} was defined in {p.get('module')}"
        + (f" ({p['file']})" if p.get("file") else " (typed into a notebook or shell)")
        for p in pieces
        if isinstance(p, dict) and p.get("name") in why
    )
    code = ", ".join(p.name for p in loaded) or f"no {RECIPE} or {CODE_DIR}/ in it"
    raise ValueError(
        f"{run_dir}: {why}. The run folder's code ({code}) does not register it"
        + (f"; {where}" if where else f" ({ENV} records no registered piece of this run)")
        + ": import that code first, or restore the file"
    )
