"""``python -m kit.runs [DIR]``: the ledger of run folders (docs/experiments.md).

``--prune`` lists, then deletes, whole run folders of failed and ``--smoke`` runs and the
``last.pt`` of complete runs (``best.pt`` and the predictions stay). A run still running, and
everything inside it, is never touched; nor are interrupted and incomplete runs (they can be
resumed), and a failed K-fold parent keeps its complete folds.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pandas as pd

from kit import cli
from kit.cli import add_debug_flag, run_cli
from kit.runfolder import LAST, drop_last, read_metrics, read_status, writer_alive
from kit.runs import ledger
from kit.runs.compare import IGNORED_FIELDS, baseline_runs, table
from kit.runs.ledger import STATUSES, csv_text, pick_columns, select, to_markdown, to_text


@dataclass(frozen=True)
class Deletion:
    """One thing :func:`apply_prune` deletes: a whole run folder or one checkpoint file."""

    path: Path
    why: str  # "failed run", "smoke run", "complete run's last.pt"
    bytes: int

    @property
    def whole_run(self) -> bool:
        return self.path.is_dir()


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _alive(row: pd.Series) -> bool:
    if row["status"] == "running":
        return True
    try:  # a status.json the ledger could read a moment ago; a live writer always wins
        return writer_alive(read_status(row["run_dir"])) is True
    except (OSError, ValueError):
        return False


def _under(path: Path, folders: list[Path]) -> bool:
    return any(path == f or f in path.parents for f in folders)


def prune_plan(df: pd.DataFrame) -> list[Deletion]:
    """What pruning the ledger rows ``df`` (:func:`kit.runs.load`) would delete, in order."""
    rows = [row for _, row in df.iterrows()]
    live = [Path(r["run_dir"]) for r in rows if _alive(r)]
    parents = set(df["parent"].dropna()) if "parent" in df else set()
    out: list[Deletion] = []
    for row in rows:
        run = Path(row["run_dir"])
        # a live run, anything inside one, or inside a folder already going: leave it alone
        if _under(run, live) or any(_under(run, [d.path]) for d in out if d.whole_run):
            continue
        smoke = bool(row.get("cfg.smoke")) if pd.notna(row.get("cfg.smoke")) else False
        has_folds = row["name"] in parents
        if smoke and not has_folds:
            out.append(Deletion(run, "smoke run", _size(run)))
        elif row["status"] == "failed" and not has_folds:
            out.append(Deletion(run, "failed run", _size(run)))
        elif row["status"] == "complete" and (run / LAST).is_file():
            out.append(Deletion(run / LAST, f"complete run's {LAST}", _size(run / LAST)))
    return out


def describe_prune(deletions: list[Deletion]) -> str:
    """The list :func:`prune_plan` made, one line per item, and the space it frees."""
    if not deletions:
        return "nothing to prune\n"
    total = sum(d.bytes for d in deletions)
    lines = [f"{len(deletions)} to delete, {total / 1e6:.1f} MB:"]
    lines += [f"  {d.bytes / 1e6:9.1f} MB  {d.path}  ({d.why})" for d in deletions]
    return "\n".join(lines) + "\n"


def apply_prune(deletions: list[Deletion]) -> int:
    """Delete what :func:`prune_plan` listed; returns the bytes freed."""
    freed = 0
    for d in deletions:
        if d.whole_run:
            shutil.rmtree(d.path)
            freed += d.bytes
        else:
            freed += drop_last(d.path.parent)
    return freed


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
    deletions = prune_plan(_rows(args, df))
    print(describe_prune(deletions), end="")
    if not deletions:
        return 0
    if not args.yes:
        if not sys.stdin.isatty():
            print("nothing deleted; pass --yes to delete these")
            return 0
        if input("delete these? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 0
    print(f"deleted {len(deletions)}, freed {apply_prune(deletions) / 1e6:.1f} MB")
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
