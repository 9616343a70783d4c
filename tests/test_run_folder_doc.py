"""docs/run-folder.md and kit.runfolder agree: files, columns, summary keys, modules; and no
reader of run folders names a run-folder file itself."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import kit.runfolder
from kit.runfolder import (
    EPOCH_COLUMNS,
    EXTRA_FILES,
    KFOLD_PARENT_FILES,
    KFOLD_SUMMARY_KEYS,
    PROB_COLUMNS,
    RUN_FILES,
    SUBMISSION_COLUMNS,
    SUMMARY_KEYS,
    TEST_COLUMNS,
    VAL_COLUMNS,
)

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "run-folder.md"
# Still naming run-folder files by hand until the training side moves to kit.runfolder's
# constants; kit.config sits below kit.runfolder and cannot import them.
NOT_YET = ("kit/train/", "kit/config.py", "kit/inference.py")


def _tables(text: str) -> dict[str, list[list[str]]]:
    """Markdown tables by their header text (``file | written | content``): body rows' cells."""
    tables: dict[str, list[list[str]]] = {}
    rows: list[list[str]] | None = None
    for line in text.splitlines():
        if not line.startswith("|"):
            rows = None
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if rows is None:
            rows = tables.setdefault(" | ".join(cells), [])
        elif not set("".join(cells)) <= set("-: "):  # not the --- row
            rows.append(cells)
    return tables


def _files(rows: list[list[str]]) -> list[str]:
    return [name for row in rows for name in re.findall(r"`([\w.]+\.\w+)`", row[0])]


def _content(rows: list[list[str]], name: str) -> str:
    (row,) = [r for r in rows if f"`{name}`" in r[0]]
    return row[-1]


TABLES = _tables(DOC.read_text())
RUN_TABLE = TABLES["file | written | content"]
EXTRA_TABLE = TABLES["file | when | content"]
PARENT_TABLE = TABLES["file | content"]


def _probs_text(keys: tuple[str, ...]) -> str:
    assert keys[-len(PROB_COLUMNS) :] == tuple(PROB_COLUMNS)
    keys = keys[: -len(PROB_COLUMNS)]
    return ",".join([*keys, PROB_COLUMNS[0], "...", PROB_COLUMNS[-1]])


def test_run_files_are_the_documented_ones():
    assert tuple(_files(RUN_TABLE)) == RUN_FILES
    assert sorted(_files(PARENT_TABLE)) == sorted(KFOLD_PARENT_FILES)
    assert tuple(_files(EXTRA_TABLE)) == EXTRA_FILES


def test_documented_columns_are_the_code_constants():
    assert f"`{','.join(EPOCH_COLUMNS)}`" in _content(RUN_TABLE, "metrics.csv")
    assert f"`{_probs_text(VAL_COLUMNS)}`" in _content(RUN_TABLE, "val_probs.csv")
    assert f"`{_probs_text(TEST_COLUMNS)}`" in _content(RUN_TABLE, "test_probs.csv")
    assert f"`{','.join(SUBMISSION_COLUMNS)}`" in _content(RUN_TABLE, "submission.csv")
    assert "`p0`..`p17`" in DOC.read_text() and len(PROB_COLUMNS) == 18


def test_documented_summary_keys_are_the_code_constants():
    (keys,) = re.findall(r"^`([^`]+)`", _content(RUN_TABLE, "summary.json"))
    assert tuple(keys.split(", ")) == SUMMARY_KEYS
    parent = _content(PARENT_TABLE, "summary.json")
    for key in KFOLD_SUMMARY_KEYS:
        assert f"`{key}`" in parent or f'`"{key}"' in parent, key


def test_the_doc_names_every_module_of_the_package():
    modules = {m.name for m in pkgutil.iter_modules(kit.runfolder.__path__)}
    documented = [r[0].strip("`") for r in TABLES["module | holds"]]
    assert sorted(documented) == sorted(f"kit.runfolder.{m}" for m in modules)
    for row in TABLES["module | holds"]:  # every name it lists is exported from kit.runfolder
        for name in re.findall(r"`(\w+)`", row[1]):
            assert name in kit.runfolder.__all__, (row[0], name)


def test_the_package_re_exports_every_public_name_of_its_modules():
    # kit/runfolder/__init__.py imports each name explicitly: a name added to a module's
    # __all__ but not to the package would be missing from `from kit.runfolder import ...`
    modules = [m.name for m in pkgutil.iter_modules(kit.runfolder.__path__)]
    public = {
        name: m for m in modules for name in importlib.import_module(f"kit.runfolder.{m}").__all__
    }
    assert sorted(kit.runfolder.__all__) == sorted(public)
    for name, m in public.items():
        owner = importlib.import_module(f"kit.runfolder.{m}")
        assert getattr(kit.runfolder, name) is getattr(owner, name), (m, name)


def test_no_module_outside_runfolder_spells_a_run_folder_file():
    names = (*RUN_FILES, *EXTRA_FILES)
    quoted = re.compile("|".join(rf"[\"']{re.escape(name)}[\"']" for name in names))
    found = []
    for path in sorted((ROOT / "kit").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(("kit/runfolder/", *NOT_YET)):
            continue
        found += [f"{rel}: {m.group()}" for m in quoted.finditer(path.read_text())]
    assert found == [], "use the kit.runfolder constants instead"
