"""The run-folder file lists the tests check are the ones docs/run-folder.md promises."""

import re
from pathlib import Path

from tests._runfolders import KFOLD_PARENT_FILES, RUN_FILES

DOC = Path(__file__).resolve().parents[1] / "docs" / "run-folder.md"


def _tables(text: str) -> list[list[str]]:
    """Per markdown table: the file names (`name.ext`) in its first column, in order."""
    tables: list[list[str]] = []
    in_table = False
    for line in text.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        if not in_table:
            tables.append([])
            in_table = True
        first_cell = line.split("|")[1]
        tables[-1] += re.findall(r"`([\w.]+\.\w+)`", first_cell)
    return [t for t in tables if t]


def test_run_files_are_the_documented_ones():
    run_table, parent_table = _tables(DOC.read_text())
    assert tuple(run_table) == RUN_FILES
    assert sorted(parent_table) == sorted(KFOLD_PARENT_FILES)
