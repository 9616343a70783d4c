"""The run ledger: list and compare run folders (read-only but for ``--prune``; see
docs/experiments.md).

``load(dir)`` gives one row per run; ``select(df, ...)`` filters them; ``table(df, vs=...)``
shows the scores and only the config fields that differ, runs of one config over seeds as one
row and, against a baseline, whether each difference is beyond the noise
(:mod:`kit.runs.repeats`); ``diff(a, b)`` names the fields two runs differ in;
:mod:`kit.runs.prune` lists and deletes what frees disk space.
"""

from kit.runs.compare import (
    IGNORED_FIELDS,
    BaselineChoice,
    diff,
    find_run,
    table,
    varying_fields,
)
from kit.runs.ledger import STALE_AFTER, RunSkipped, ledger_row, load
from kit.runs.render import csv_text, to_markdown, to_text
from kit.runs.select import STATUSES, pick_columns, select

__all__ = [
    "IGNORED_FIELDS",
    "STALE_AFTER",
    "STATUSES",
    "BaselineChoice",
    "RunSkipped",
    "csv_text",
    "diff",
    "find_run",
    "ledger_row",
    "load",
    "pick_columns",
    "select",
    "table",
    "to_markdown",
    "to_text",
    "varying_fields",
]
