"""``python -m kit.runs [DIR]``: the ledger of run folders (docs/experiments.md).

Filters (``--name``, ``--status``, ``--no-smoke``, ``--study``) choose the rows, ``--columns``
the columns; ``--markdown`` and ``--csv`` print every column at full width; ``--plot`` overlays
the rows' curves; ``--prune`` frees disk space.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pandas as pd

from kit import cli
from kit.cli import add_debug_flag, run_cli
from kit.runfolder import read_metrics
from kit.runs import ledger, prune
from kit.runs.compare import IGNORED_FIELDS, baseline_runs, table
from kit.runs.ledger import STATUSES, csv_text, pick_columns, select, to_markdown, to_text


def _parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(
        prog="python -m kit.runs",
        description="List run folders: scores and only the config fields that differ "
        f"(never shown: {', '.join(IGNORED_FIELDS)}).",
    )
    p.add_argument("dir", nargs="?", default="runs", help="folder of run folders (default: runs)")
    rows = p.add_argument_group("which runs")
    rows.add_argument("--name", help="only runs whose folder or run name contains this (or a glob)")
    rows.add_argument(
        "--status", help=f"only runs of these statuses, comma-separated ({', '.join(STATUSES)})"
    )
    rows.add_argument("--no-smoke", action="store_true", help="leave out --smoke runs")
    rows.add_argument("--study", metavar="NAME", help="only the trials of this kit.tune study")
    rows.add_argument(
        "--stale-hours",
        type=float,
        default=ledger.STALE_AFTER.total_seconds() / 3600,
        help="a 'running' run not updated for this long is shown incomplete",
    )
    shown = p.add_argument_group("what to show")
    shown.add_argument(
        "--vs",
        metavar="BASELINE",
        help="show each run's changes from this run (or --seeds folder) and whether its "
        "difference is beyond the noise",
    )
    shown.add_argument(
        "--each-seed",
        action="store_true",
        help="one row per run: do not show runs of one config over several seeds as one row",
    )
    shown.add_argument("--sort", metavar="METRIC", help="sort by a column, e.g. val_macro_f1")
    shown.add_argument("--all-fields", action="store_true", help="show every config field")
    shown.add_argument(
        "--columns", help="only these columns, comma-separated, e.g. name,status,f1,lr"
    )
    shown.add_argument(
        "--width",
        type=int,
        help="most characters per line of the plain table (default: the terminal's, or 120; "
        "0: no limit)",
    )
    out = p.add_argument_group("output")
    fmt = out.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="print a GitHub markdown table")
    fmt.add_argument("--csv", action="store_true", help="print CSV (every column, full names)")
    out.add_argument("--plot", metavar="PNG", help="also draw the listed runs' curves, overlaid")
    disk = p.add_argument_group("disk space")
    disk.add_argument(
        "--prune",
        action="store_true",
        help="delete failed and --smoke runs and last.pt of complete runs (lists them first)",
    )
    disk.add_argument("--yes", action="store_true", help="with --prune: delete without asking")
    add_debug_flag(p)
    return p


def _rows(args: argparse.Namespace, df: pd.DataFrame) -> pd.DataFrame:
    status = args.status.split(",") if args.status else None
    smoke = False if args.no_smoke else None
    return select(df, name=args.name, status=status, smoke=smoke, study=args.study)


def _show(args: argparse.Namespace, df: pd.DataFrame) -> int:
    rows = _rows(args, df)
    vs = None
    if args.vs is not None:  # the baseline, with its other seeds, is found among all runs
        vs, family = baseline_runs(df, args.vs)
        rows = pd.concat([family[~family["name"].isin(rows["name"])], rows])
    if rows.empty:
        print(f"no runs in {args.dir} match the filters")
        return 0
    # a column asked for by name is shown even when every run has the same value
    all_fields = args.all_fields or bool(args.columns)
    shown = table(rows, vs=vs, all_fields=all_fields, sort=args.sort, group=not args.each_seed)
    if args.columns:
        shown = pick_columns(shown, [c.strip() for c in args.columns.split(",") if c.strip()])
    if args.markdown:
        print(to_markdown(shown), end="")
    elif args.csv:
        print(csv_text(shown), end="")
    else:
        width = shutil.get_terminal_size((120, 24)).columns if args.width is None else args.width
        print(to_text(shown, width=None if args.columns else width), end="")
    if args.plot:
        print(_plot(rows, args.plot))
    return 0


def _plot(rows: pd.DataFrame, png: str) -> str:
    """The listed runs' metrics.csv curves on one picture (runs without epochs left out)."""
    from kit.plot import overlay_png  # matplotlib: only to draw, not for the ledger

    curves = {Path(d).name: read_metrics(Path(d)) for d in rows["run_dir"]}
    curves = {name: epochs for name, epochs in curves.items() if epochs}
    if not curves:
        raise ValueError("none of the listed runs has a metrics.csv to plot")
    return f"wrote {overlay_png(curves, png)} ({len(curves)} runs)"


def _prune(args: argparse.Namespace, df: pd.DataFrame) -> int:
    deletions = prune.plan(_rows(args, df))
    print(prune.describe(deletions), end="")
    if not deletions:
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            print("nothing deleted; pass --yes to delete these")
            return 0
        if input("delete these? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 0
    print(f"deleted {len(deletions)}, freed {prune.apply(deletions) / 1e6:.1f} MB")
    return 0


def _main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    df = ledger.load(args.dir, stale_after=timedelta(hours=args.stale_hours))
    if df.empty:
        print(f"no run folders in {args.dir}")
        return 0
    if args.prune:
        return _prune(args, df)
    return _show(args, df)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the ledger; returns the exit code (2 on bad input, with the reason on stderr).

    ``python -m kit.runs suspects RUN ...`` runs the label-noise finder instead."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["suspects"]:
        from kit.runs import suspects  # its contact sheets load matplotlib: not for the ledger

        return suspects.main(argv[1:])
    return run_cli(_main, argv)


if __name__ == "__main__":
    sys.exit(main())
