"""Every code block marked runnable in README.md, CONTRIBUTING.md and docs/ runs as written.

Mark a block with an extra word after the language: ```` ```bash runnable ```` or
```` ```python runnable ````. Blocks run in order, per file, in a scratch copy of the
repository; a recipe command (`python recipes/<name>.py ...`) gets `--smoke` appended so that a
documented training finishes in seconds.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_FENCE = re.compile(r"^```(bash|python) runnable\n(.*?)^```", re.M | re.S)
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


@pytest.fixture(scope="module")
def scratch_repo(tmp_path_factory) -> Path:
    dst = tmp_path_factory.mktemp("repo")
    # top-level data/ and runs/ are skipped below; kit/data and kit/runs are packages to copy
    ignore = shutil.ignore_patterns(".git", ".ci-venv", "__pycache__", ".*_cache")
    for item in ROOT.iterdir():
        if item.name in {".git", ".ci-venv", "data", "runs"}:
            continue
        if item.is_dir():
            shutil.copytree(item, dst / item.name, ignore=ignore)
        else:
            shutil.copy2(item, dst / item.name)
    return dst


_WITH_BLOCKS = [f for f in _doc_files() if runnable_blocks(f.read_text())]


@pytest.mark.parametrize("doc", _WITH_BLOCKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_runnable_blocks_run(doc: Path, scratch_repo: Path):
    blocks = runnable_blocks(doc.read_text())
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    for i, (lang, code) in enumerate(blocks, 1):
        if lang == "bash":
            cmd = ["bash", "-euo", "pipefail", "-c", smoke(code)]
        else:
            cmd = [sys.executable, "-c", code]
        out = subprocess.run(
            cmd, cwd=scratch_repo, env=env, capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, (
            f"{doc.name} runnable block {i} failed:\n{code}\n--- stdout\n{out.stdout[-3000:]}"
            f"\n--- stderr\n{out.stderr[-3000:]}"
        )
