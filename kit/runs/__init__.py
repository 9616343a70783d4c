"""The run ledger: list and compare run folders (read-only; see docs/experiments.md).

``load(dir)`` gives one row per run; ``table(df, vs=...)`` shows the scores and only the
config fields that differ; ``diff(a, b)`` names the fields two runs differ in.
"""

from kit.runs.compare import IGNORED_FIELDS, diff, find_run, table, varying_fields
from kit.runs.ledger import STALE_AFTER, ledger_row, load
from kit.runs.render import to_markdown, to_text

__all__ = [
    "IGNORED_FIELDS",
    "STALE_AFTER",
    "diff",
    "find_run",
    "ledger_row",
    "load",
    "table",
    "to_markdown",
    "to_text",
    "varying_fields",
]
