"""Every code block marked runnable in README.md, CONTRIBUTING.md and docs/ runs as written,
and every kit name a Python block there or a recipe uses exists.

Mark a block with an extra word after the language: ```` ```bash runnable ```` or
```` ```python runnable ````. Blocks run in order, per file, in a scratch copy of the
repository (its git-tracked files and the untracked ones git does not ignore); a recipe command
(`python recipes/<name>.py ...`) gets `--smoke` appended so that a documented training finishes
in seconds.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
import textwrap
import types
from importlib import import_module
from pathlib import Path

import pytest

import kit
from tests import _proc

ROOT = Path(__file__).resolve().parents[1]
_FENCE = re.compile(r"^```(bash|python) runnable\n(.*?)^```", re.M | re.S)
_PYTHON = re.compile(r"^[ \t]*```python\b[^\n]*\n(.*?)^[ \t]*```", re.M | re.S)
_GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
_RECIPE = re.compile(r"^(python recipes/\S+\.py\b.*?)(\s*\\?)$", re.M)


def _doc_files() -> list[Path]:
    files = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [f for f in files if f.exists()]


def runnable_blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every runnable block of a markdown text, in order."""
    return [(m.group(1), m.group(2)) for m in _FENCE.finditer(text)]


def smoke(code: str) -> str:
    """Append --smoke to recipe commands that don't already ask for it."""

    def add(m: re.Match[str]) -> str:
        cmd = m.group(1)
        return m.group(0) if "--smoke" in cmd else f"{cmd} --smoke{m.group(2)}"

    return _RECIPE.sub(add, code)


def test_block_extraction_and_smoke_rewrite():
    text = (
        "x\n```bash runnable\necho hi\n```\n"
        "```bash\nnot me\n```\n```python runnable\nprint(1)\n```\n"
    )
    assert runnable_blocks(text) == [("bash", "echo hi\n"), ("python", "print(1)\n")]
    assert smoke("python recipes/a.py --lr 1\n") == "python recipes/a.py --lr 1 --smoke\n"
    assert smoke("python recipes/a.py --smoke\n") == "python recipes/a.py --smoke\n"
    assert (
        smoke("python recipes/a.py \\\n  --lr 1\n") == "python recipes/a.py --smoke \\\n  --lr 1\n"
    )


def test_the_docs_do_mark_runnable_blocks():
    total = sum(len(runnable_blocks(f.read_text())) for f in _doc_files())
    assert total >= 5, "the docs lost their runnable examples"


def repo_files(root: Path = ROOT) -> list[str]:
    """The repository's files as git sees them: tracked, plus untracked ones not ignored (so
    a virtual environment, data, runs and caches inside the clone are never copied)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return sorted(name for name in out.stdout.split("\0") if name and (root / name).is_file())


def copy_repo(root: Path, dst: Path) -> None:
    """Copy ``repo_files(root)`` into ``dst``, keeping their paths."""
    for name in repo_files(root):
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, dst / name)


def test_the_scratch_copy_takes_git_files_only(tmp_path: Path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    subprocess.run([*_GIT, "init", "-q"], cwd=src, check=True)
    (src / ".gitignore").write_text(".venv/\nruns/\n")
    for name in ["kit/a.py", "new.md", ".venv/lib/big.py", "runs/r/x.csv"]:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        (src / name).write_text(name)
    subprocess.run([*_GIT, "add", ".gitignore", "kit/a.py"], cwd=src, check=True)
    subprocess.run([*_GIT, "commit", "-qm", "x"], cwd=src, check=True)
    copy_repo(src, dst)
    copied = sorted(p.relative_to(dst).as_posix() for p in dst.rglob("*") if p.is_file())
    assert copied == [".gitignore", "kit/a.py", "new.md"]  # untracked new.md too, no .venv


@pytest.fixture(scope="module")
def scratch_repo(tmp_path_factory) -> Path:
    """A scratch clone: the files git sees, committed, so ``git status`` there shows exactly
    what the documented commands wrote."""
    dst = tmp_path_factory.mktemp("repo")
    copy_repo(ROOT, dst)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "scratch"]):
        subprocess.run([*_GIT, *args], cwd=dst, check=True, capture_output=True)
    return dst


def generated_files(repo: Path) -> list[str]:
    """What ``git status --porcelain`` shows in ``repo`` besides a teammate's own recipes:
    files the documented commands left in the clone that are neither under runs/ nor ignored."""
    out = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [line for line in out.splitlines() if not line[3:].startswith("recipes/")]


def test_generated_files_are_what_git_status_shows(tmp_path: Path):
    copy_repo(ROOT, tmp_path)
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run([*_GIT, *args], cwd=tmp_path, check=True, capture_output=True)
    assert generated_files(tmp_path) == []
    (tmp_path / "recipes" / "mine.py").write_text("import kit\n")  # the teammate's own: fine
    (tmp_path / "runs" / "r").mkdir(parents=True)
    (tmp_path / "runs" / "r" / "summary.json").write_text("{}")  # ignored
    (tmp_path / "stray.csv").write_text("x\n")
    assert generated_files(tmp_path) == ["?? stray.csv"]


#: Walkthroughs that train several runs end to end (about 20-50 s each on 2 cores): `slow`.
_LONG_WALKTHROUGHS = {"getting-started.md", "experiments.md", "ensembling.md", "search.md"}
_WITH_BLOCKS = [
    pytest.param(f, marks=[pytest.mark.slow] if f.name in _LONG_WALKTHROUGHS else [])
    for f in _doc_files()
    if runnable_blocks(f.read_text())
]


@pytest.mark.parametrize("doc", _WITH_BLOCKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_runnable_blocks_run(doc: Path, scratch_repo: Path, tmp_path: Path):
    """Every block, as a user would run it: a python block as ``python -c``, a bash block in
    bash, whose ``python`` commands start warm (tests/_proc.py) but run as fresh processes."""
    blocks = runnable_blocks(doc.read_text())
    bindir = str(Path(sys.executable).parent)
    with _proc.python_on_path(tmp_path / "bin") as shims:
        env = {**os.environ, "PATH": os.pathsep.join([shims, bindir, os.environ.get("PATH", "")])}
        env["OMP_NUM_THREADS"] = "1"  # one thread, as every test trains: the other worker's core
        for i, (lang, code) in enumerate(blocks, 1):
            if lang == "bash":
                cmd = ["bash", "-euo", "pipefail", "-c", smoke(code)]
                out = subprocess.run(
                    cmd, cwd=scratch_repo, env=env, capture_output=True, text=True, timeout=300
                )
            else:
                out = _proc.run(
                    [sys.executable, "-c", code], cwd=scratch_repo, env=env, timeout=300
                )
            _block_ran(doc, i, code, out)
    # the "Done when" of issue #16: following the docs leaves git status clean
    assert generated_files(scratch_repo) == [], (
        f"{doc.name}'s commands left files that git status shows; write them under runs/ by "
        "default or add them to .gitignore"
    )


def _block_ran(doc: Path, i: int, code: str, out: subprocess.CompletedProcess[str]) -> None:
    assert out.returncode == 0, (
        f"{doc.name} runnable block {i} failed:\n{code}\n--- stdout\n{out.stdout[-3000:]}"
        f"\n--- stderr\n{out.stderr[-3000:]}"
    )


# ---- names that exist -------------------------------------------------------------------------


def _exists(module: str, name: str | None = None) -> bool:
    """Whether ``module`` (``kit``, ``kit.x``) imports and, given ``name``, holds it."""
    try:
        found = import_module(module)
    except ImportError:
        return False
    return name is None or hasattr(found, name)


def missing_kit_names(code: str) -> list[str]:
    """Each use of a kit name that does not exist, as ``line: what``: ``from kit.x import y``,
    ``import kit.x``, ``from kit import y`` and ``kit.y`` (``kit.y`` is an export of ``import
    kit`` or a module of kit, which ``kit.y`` imports on first use)."""
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "kit" or node.module.startswith("kit."):
                found += [
                    f"{node.lineno}: from {node.module} import {a.name}"
                    for a in node.names
                    if not _exists(node.module, a.name)
                ]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("kit.")]
            found += [f"{node.lineno}: import {name}" for name in names if not _exists(name)]
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "kit"
            and not _exists("kit", node.attr)
        ):
            found.append(f"{node.lineno}: kit.{node.attr}")
    return found


def python_blocks(text: str) -> list[str]:
    """The code of every ```python block of a markdown text, runnable or not."""
    return [m.group(1) for m in _PYTHON.finditer(text)]


def test_the_name_checker_on_hand_written_examples():
    code = (
        "import kit\nimport kit.runs\nimport kit.nope\nfrom kit.labels import encode, nope\n"
        "from kit import Config, io, nope\nkit.fit(kit.Config())\nkit.runs.diff(1, 2)\n"
        "kit.plot.worst_mistakes\nkit.nope\n"
    )
    assert missing_kit_names(code) == [
        "3: import kit.nope",
        "4: from kit.labels import nope",
        "5: from kit import nope",
        "9: kit.nope",
    ]
    text = "```python\na = 1\n```\n\n  ```python runnable\n  b = 2\n  ```\n```bash\nc\n```\n"
    assert python_blocks(text) == ["a = 1\n", "  b = 2\n"]


def test_no_public_name_repeats_a_kit_module_name():
    # importing kit.x sets the attribute x of kit to the module, hiding a name exported as x
    modules = {p.stem for p in (ROOT / "kit").iterdir() if p.suffix == ".py" or p.is_dir()}
    # unless the export is that module itself (kit.tune: a callable module), so nothing hides
    for name in modules & set(kit._EXPORTS):
        module, value = import_module(f"kit.{name}"), getattr(kit, name)
        assert value is module or not isinstance(value, types.ModuleType), name


def _sources() -> list[tuple[str, str]]:
    """(where, code) of every recipe and every Python block of the docs."""
    sources = [(str(p.relative_to(ROOT)), p.read_text()) for p in sorted(ROOT.glob("recipes/*.py"))]
    for doc in _doc_files():
        for i, code in enumerate(python_blocks(doc.read_text()), 1):
            sources.append((f"{doc.relative_to(ROOT)} python block {i}", code))
    return sources


def test_recipes_and_docs_use_only_kit_names_that_exist():
    problems = []
    for where, code in _sources():
        try:
            uses = missing_kit_names(textwrap.dedent(code))
        except SyntaxError as err:
            uses = [f"{err.lineno}: not Python ({err.msg})"]
        problems += [f"{where}, line {use}" for use in uses]
    assert not problems, (
        "these kit names do not exist; use `kit.<name>` for a name of kit.__all__, else the "
        "module that defines it (`kit.<module>.<name>`):\n" + "\n".join(problems)
    )
