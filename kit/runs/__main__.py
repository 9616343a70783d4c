"""``python -m kit.runs [DIR] [--vs BASELINE] [--markdown] [--sort METRIC] [--all-fields]
[--study NAME] [--plot PNG]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pandas as pd

from kit.plot import overlay_png
from kit.runfolder import read_metrics
from kit.runs import ledger, suspects
from kit.runs.compare import IGNORED_FIELDS, table
from kit.runs.render import to_markdown, to_text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m kit.runs",
        description="List run folders: scores and only the config fields that differ "
        f"(never shown: {', '.join(IGNORED_FIELDS)}).",
    )
    p.add_argument("dir", nargs="?", default="runs", help="folder of run folders (default: runs)")
    p.add_argument("--vs", metavar="BASELINE", help="show each run's changes from this run")
    p.add_argument("--markdown", action="store_true", help="print a GitHub markdown table")
    p.add_argument("--sort", metavar="METRIC", help="sort by a column, e.g. val_macro_f1")
    p.add_argument("--all-fields", action="store_true", help="show every config field")
    p.add_argument("--study", metavar="NAME", help="only the trials of this kit.tune study")
    p.add_argument("--plot", metavar="PNG", help="write the listed runs' curves, overlaid")
    p.add_argument(
        "--stale-hours",
        type=float,
        default=ledger.STALE_AFTER.total_seconds() / 3600,
        help="a 'running' run not updated for this long is shown incomplete",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Print the ledger; returns the exit code (2 on bad input, with the reason on stderr).

    ``python -m kit.runs suspects RUN ...`` runs the label-noise finder instead."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["suspects"]:
        return suspects.main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        df = ledger.load(args.dir, stale_after=timedelta(hours=args.stale_hours))
        if args.study is not None and not df.empty:
            df = df[df.get("cfg.study", pd.Series(None, index=df.index)) == args.study]
        if df.empty:
            which = f" of study {args.study}" if args.study is not None else ""
            print(f"no run folders{which} in {args.dir}")
            return 0
        shown = table(df, vs=args.vs, all_fields=args.all_fields, sort=args.sort)
        plotted = _plot(df, args.plot) if args.plot else None
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(to_markdown(shown) if args.markdown else to_text(shown), end="")
    if plotted:
        print(plotted)
    return 0


def _plot(df: pd.DataFrame, png: str) -> str:
    """The listed runs' metrics.csv curves on one picture (runs without epochs left out)."""
    curves = {Path(d).name: read_metrics(Path(d)) for d in df["run_dir"]}
    curves = {name: rows for name, rows in curves.items() if rows}
    if not curves:
        raise ValueError("none of the listed runs has a metrics.csv to plot")
    return f"wrote {overlay_png(curves, png)} ({len(curves)} runs)"


if __name__ == "__main__":
    sys.exit(main())
