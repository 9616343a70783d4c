"""The run ledger: list and compare run folders (read-only but for ``--prune``; see
docs/experiments.md).

``load(dir)`` gives one row per run; ``select(df, ...)`` filters them; ``table(df, vs=...)``
shows the scores and only the config fields that differ, runs of one config over seeds as one
row and, against a baseline, whether each difference is beyond the noise; ``diff(a, b)`` names
the fields two runs differ in. :mod:`kit.runs.ledger` reads, chooses and prints the rows,
:mod:`kit.runs.compare` compares them, ``python -m kit.runs --prune`` lists and deletes what
frees disk space, :mod:`kit.runs.suspects` finds the labels a run doubts.
"""

from kit.runs.compare import (
    IGNORED_FIELDS,
    BaselineChoice,
    diff,
    find_run,
    table,
    varying_fields,
)
from kit.runs.ledger import (
    STALE_AFTER,
    STATUSES,
    RunSkipped,
    csv_text,
    ledger_row,
    load,
    pick_columns,
    select,
    to_markdown,
    to_text,
)

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
