"""The run's own code (docs/run-folder.md), recorded at its start so that every tool after
training (``kit.predict``, ``kit.ensemble``, ``kit.score``, ``--resume``, ``kit.tune``) finds it
in a fresh process from the run folder alone:

- the source (:func:`write_source`): the git state, ``recipe.py`` or ``notebook.py``, and
  ``git.diff`` when the working tree is dirty (untracked files under ``recipes/`` and ``kit/``
  count: a recipe run before it is committed is a change);
- the registered pieces of one's own the config names (:func:`write_code`: ``env.json``'s
  ``code`` and the ``code/`` folder), imported again by :func:`ensure_run_code`;
- a custom training transform (``train_transform.json``): ``A.to_dict``, or for a pipeline
  albumentations cannot re-create (a ``Lambda``) its ``repr`` and a fingerprint of its
  functions' source. albumentations is imported only to build or re-create a pipeline: the
  ledger reads the JSON alone (and stays quick to start).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib.util
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kit import io
from kit._config_checks import check_model_name, check_registries
from kit.errors import KitError
from kit.progress import in_notebook
from kit.registry import REGISTRIES, definition
from kit.runfolder.names import CODE_DIR, ENV, GIT_DIFF, NOTEBOOK, RECIPE, TRAIN_TRANSFORM
from kit.runfolder.read import read_env

__all__ = [
    "SOURCE_DIRS",
    "GitState",
    "NotReCreatable",
    "code_files",
    "ensure_run_code",
    "git_state",
    "load_run_code",
    "notebook_cells",
    "notebook_module",
    "read_transform_record",
    "recipe_path",
    "recreate_train_transform",
    "registered_pieces",
    "resumed_train_transform",
    "transform_record",
    "transform_summary",
    "write_code",
    "write_source",
    "write_train_transform",
]

#: Folders (from the repository's top) whose untracked files make a working tree dirty.
SOURCE_DIRS = ("recipes", "kit")
_KIT_DIR = Path(__file__).resolve().parents[1]
#: How many transform names a summary lists before ``...``.
_SHOWN_NAMES = 6
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


# The source: git, the recipe or the notebook.


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


def write_source(
    run_dir: str | os.PathLike[str],
    recipe: str | os.PathLike[str] | None = None,
    cwd: Path | None = None,
) -> list[Path]:
    """Store ``recipe.py`` (a copy of ``recipe``, by default :func:`recipe_path`) or in a Jupyter
    kernel ``notebook.py`` (:func:`notebook_module`), and ``git.diff`` when the working tree is
    dirty; returns the files written."""
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
        diff = (_git("diff", "HEAD", "--binary", cwd=top) or "") + "".join(
            # untracked files as new-file patches, so that git apply re-creates them too
            _git("diff", "--no-index", "--", os.devnull, p, cwd=top, ok=(0, 1)) or ""
            for p in state.untracked
        )
        if diff:
            written.append(io.write_text(run_dir / GIT_DIFF, diff))
    return written


# The registered pieces of one's own and their modules.


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
            module = getattr(definition(entry), "__module__", None)
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
    # each folder resolved once: thousands of modules (under pytest, with torch) in a few
    # hundred folders, and resolving every file took a tenth of a second at every run start
    resolved: dict[str, Path] = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name == "__main__" or not path or not path.endswith(".py") or _kit_module(name):
            continue
        head, tail = os.path.split(path)
        if head not in resolved:
            resolved[head] = Path(head).resolve()
        if os.path.islink(path):  # a linked file: the folder of the file it links to
            file = Path(path).resolve()
        elif resolved[head] in folders:
            file = resolved[head] / tail
        else:
            continue
        if file.parent in folders:
            found[name] = file
    return found


def _installed() -> set[Path]:
    """The folders of the standard library and installed packages."""
    paths = sysconfig.get_paths()
    return {Path(paths[k]).resolve() for k in ("stdlib", "platstdlib", "purelib", "platlib")}


def write_code(
    run_dir: str | os.PathLike[str], cfg: Any, recipe: Path | None = None
) -> list[dict[str, Any]]:
    """Copy into ``run_dir/code/`` the file of every module that defined a piece ``cfg`` names,
    and of every module imported from its folder or the folder of ``recipe`` (by default
    :func:`recipe_path`; itself is ``recipe.py``). Returns the pieces, for ``env.json``."""
    pieces = registered_pieces(cfg)
    recipe = recipe_path() if recipe is None else recipe
    folders = {Path(p["file"]).parent for p in pieces if p["file"]}
    folders |= {recipe.resolve().parent} if recipe is not None else set()
    folders -= _installed()  # a piece of an installed package: that package is not copied
    modules = {
        name: path
        for name, path in _local_modules(folders).items()
        if _KIT_DIR not in path.parents and "." not in name
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
    copied = [(p, p.stem) for p in sorted(code_dir.glob("*.py"))]
    own = [(p, f"kit_run_{_sha(str(p), 'sha1')[:10]}_{p.stem}") for p in code_files(run_dir)]
    with _on_path(code_dir):
        for path, name in [*copied, *own]:
            if name not in sys.modules:
                _import(path, name)
                done.append(path)
    return done


def _import(path: Path, name: str) -> None:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except BaseException as err:
        del sys.modules[name]
        if not isinstance(err, Exception):
            raise
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


# A custom training transform.


class NotReCreatable(KitError, ValueError):
    """The recorded pipeline cannot be rebuilt from the run folder (it was not serializable)."""


def _children(transform: Any) -> list[Any]:
    return list(getattr(transform, "transforms", None) or [])


def _names(transform: Any) -> list[str]:
    """The transforms' class names, depth first; a nested group reads ``OneOf[Blur, ...]``."""
    children = _children(transform)
    if not children:
        return [type(transform).__name__]
    return [
        f"{type(c).__name__}[{', '.join(_names(c))}]" if _children(c) else type(c).__name__
        for c in children
    ]


def _repr(transform: Any) -> str:
    """``repr`` without memory addresses; albumentations' Compose repr serializes its
    transforms, which a Lambda refuses: then the transforms' own reprs, nested."""
    try:
        text = repr(transform)
    except ValueError:
        inner = ", ".join(_repr(c) for c in _children(transform))
        text = f"{type(transform).__name__}([{inner}])"
    return _ADDRESS.sub("", text)


def _functions(value: Any, seen: set[int]) -> list[types.FunctionType]:
    """Every plain function held by ``value``'s transforms (a Lambda's image=..., say)."""
    if id(value) in seen:
        return []
    seen.add(id(value))
    found = []
    for attr in vars(value).values() if hasattr(value, "__dict__") else []:
        if isinstance(attr, types.FunctionType) and attr.__module__ != "albumentations":
            found.append(attr)
        elif isinstance(attr, (list, tuple)):
            for item in attr:
                found += _functions(item, seen)
    return found


def _source(fn: types.FunctionType) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):  # defined where no source is kept (exec, a REPL)
        code = fn.__code__
        return f"{fn.__qualname__}:{code.co_code.hex()}:{code.co_consts!r}"


def _sha(text: str, algorithm: str = "sha256") -> str:
    return hashlib.new(algorithm, text.encode("utf-8")).hexdigest()


def transform_record(transform: Any) -> dict[str, Any]:
    """What :func:`write_train_transform` stores for ``transform`` (see this module's doc)."""
    import albumentations as A

    names = _names(transform)
    shown = ", ".join(names[:_SHOWN_NAMES]) + (", ..." if len(names) > _SHOWN_NAMES else "")
    text = _repr(transform)
    try:
        serialized = A.to_dict(transform)
        A.from_dict(serialized)  # a named Lambda serializes but cannot come back alone
    except Exception:  # albumentations raises ValueError, KeyError, ... for what it cannot do
        serialized = None
    if serialized is not None:
        fingerprint = _sha(json.dumps(serialized["transform"], sort_keys=True, default=str))
        summary = f"custom: {shown} ({fingerprint[:8]})"
    else:
        sources = [_source(fn) for fn in _functions(transform, set())]
        fingerprint = _sha("\n".join([text, *sources]))
        summary = f"custom, not serializable (repr + source {fingerprint[:8]}): {shown}"
    return {
        "summary": summary,
        "fingerprint": fingerprint,
        "serializable": serialized is not None,
        "albumentations": serialized,
        "repr": text,
    }


def write_train_transform(run_dir: str | os.PathLike[str], transform: Any) -> Path:
    """``train_transform.json`` in ``run_dir`` for ``transform`` (see :func:`transform_record`)."""
    record = transform_record(transform)
    return io.write_text(Path(run_dir) / TRAIN_TRANSFORM, json.dumps(record, indent=2) + "\n")


def read_transform_record(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run's ``train_transform.json``, or None when it trained with its preset alone."""
    path = Path(run_dir) / TRAIN_TRANSFORM
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: not readable ({err}); it records the custom transform") from err
    if not isinstance(record, dict) or "summary" not in record:
        raise ValueError(f"{path}: no 'summary'; not a record of a training transform")
    return record


def transform_summary(run_dir: str | os.PathLike[str]) -> str | None:
    """The ledger's one line for the run's custom transform (None: its preset's)."""
    record = read_transform_record(run_dir)
    return None if record is None else str(record["summary"])


def recreate_train_transform(run_dir: str | os.PathLike[str]) -> Any | None:
    """The run's custom transform rebuilt by ``A.from_dict`` (None: it used its preset).

    :class:`NotReCreatable` when it was recorded by its repr alone: pass the same transform
    again (``kit.fit(cfg.replace(resume=...), train_transform=...)``, or the recipe does).
    """
    record = read_transform_record(run_dir)
    if record is None:
        return None
    if not record.get("serializable"):
        raise NotReCreatable(
            f"{Path(run_dir) / TRAIN_TRANSFORM}: the run's training transform is not "
            f"serializable ({record['summary']}); resume it from the code that made it "
            "(the recipe, or kit.fit(cfg.replace(resume=RUN_DIR), train_transform=...))"
        )
    import albumentations as A

    return A.from_dict(record["albumentations"])


def resumed_train_transform(run_dir: str | os.PathLike[str], given: Any | None) -> Any | None:
    """The training transform a resume of ``run_dir`` trains with: ``given`` when it is the one
    the run recorded, the recorded one re-created when ``given`` is None; a ValueError when
    they differ (the run's ``last.pt`` was trained under the recorded one)."""
    record = read_transform_record(run_dir)
    if given is None:
        return recreate_train_transform(run_dir)
    now = transform_record(given)
    if record is None or record["fingerprint"] != now["fingerprint"]:
        was = "its preset's" if record is None else record["summary"]
        raise ValueError(
            f"cannot resume {run_dir} with changed train_transform: {was} -> {now['summary']}; "
            "resume with the transform it trained with (or none: kit re-creates the recorded "
            "one), or start a new run"
        )
    return given
