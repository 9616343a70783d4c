"""docs/troubleshooting.md lists every message a user can meet; each row is produced by a test.

Every row of the page's tables has an id and a message excerpt. A row is claimed where its
message is produced: the test of the module that produces it provokes it the way a user would
and calls ``assert_documented(<row id>, <the text the user sees>)`` (tests/_triggers.py), which
checks the excerpt is in that text. Every row of the page must be claimed and every claim must
name a row, so neither the page nor the code can drift. (Whether the fix a row suggests works is
tests/test_troubleshooting_fixes.py.)
"""

from __future__ import annotations

import re
from pathlib import Path

from tests._triggers import documented

ROOT = Path(__file__).resolve().parents[1]

#: A call of ``assert_documented`` with a row's id in a test file: the row is claimed there.
_CLAIM = re.compile(r"""assert_documented\(\s*["']([a-z0-9-]+)["']""")


def claimed_in_module_tests() -> dict[str, list[str]]:
    """id -> the test files that claim the row with :func:`assert_documented`."""
    claims: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for row in _CLAIM.findall(path.read_text(encoding="utf-8")):
            claims.setdefault(row, []).append(path.name)
    return claims


def test_every_row_is_claimed_by_the_test_that_produces_its_message():
    rows, claims = documented(), claimed_in_module_tests()
    assert len(rows) >= 60
    assert sorted(set(claims) - set(rows)) == [], "claimed by a test, but not on the page"
    assert sorted(set(rows) - set(claims)) == [], "documented, but no test produces it"
