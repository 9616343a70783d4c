"""``python -m kit.ensemble RUN_OR_CSV [...] -o submission.csv --method soft --weights auto``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kit import cli
from kit.cli import add_debug_flag, run_cli
from kit.ensemble.core import (
    EnsembleResult,
    biases_path,
    calibrate_ensemble,
    ensemble,
    record_path,
    write,
)
from kit.ensemble.methods import METHODS


def _weights(text: str | None) -> list[float] | str | None:
    if text is None or text == "auto":
        return text
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto' or comma-separated numbers like 0.5,0.3,0.2; got {text!r}"
        ) from None


def _parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(
        prog="python -m kit.ensemble",
        description="Combine run folders, K-fold parents and submission CSVs into one submission.",
    )
    p.add_argument("members", nargs="+", help="run folders, K-fold parents or submission CSVs")
    p.add_argument(
        "-o",
        "--output",
        help="submission CSV to write; its record goes beside as <name>.json (so not a .json)",
    )
    p.add_argument("--method", default="soft", choices=sorted(METHODS))
    p.add_argument(
        "--weights",
        type=_weights,
        default=None,
        help="'auto' (search on validation) or one number per member, e.g. 2,1,1",
    )
    p.add_argument("--info", help="eval info.csv: write rows in its order (checks the ids)")
    p.add_argument("--seed", type=int, default=0, help="seed of the weight search")
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="fit 18 per-class biases for macro F1 on validation rows and apply them to test "
        "(prints the in-sample and the honest cross-fitted F1; biases saved beside -o)",
    )
    add_debug_flag(p)
    return p


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def format_table(result: EnsembleResult) -> str:
    """The member table and the ensemble's validation score, as printed by the CLI."""
    width = max(16, *(len(m.name) for m in result.members))
    lines = [f"{'member':<{width}}  {'kind':<10}  {'val F1':>7}  {'weight':>7}"]
    for m in result.members:
        lines.append(
            f"{m.name:<{width}}  {m.kind:<10}  {_fmt(m.val_macro_f1):>7}  {m.weight:>7.3f}"
        )
    known = [m.val_macro_f1 for m in result.members if m.val_macro_f1 is not None]
    label = f"ensemble ({result.method})"
    lines.append(f"{label:<{width}}  {'':<10}  {_fmt(result.val_macro_f1):>7}")
    if known:
        lines.append(f"{'best member':<{width}}  {'':<10}  {_fmt(max(known)):>7}")
    if result.val_note:
        lines.append(f"no ensemble validation score: {result.val_note}")
    return "\n".join(lines)


def _main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    if args.output:
        record_path(args.output)  # refuse a colliding name before any work
    result = ensemble(args.members, args.method, args.weights, info=args.info, seed=args.seed)
    print(format_table(result))
    if args.calibrate:
        print(calibrate_ensemble(result).summary())
    if args.output:
        sub, record = write(result, args.output)
        print(f"wrote {sub} ({len(result.test_ids)} rows) and {record}")
        if result.calibration is not None:
            print(f"wrote biases to {biases_path(sub)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (2 on bad input, with the reason on stderr)."""
    return run_cli(_main, argv, output_fix="pass another -o PATH, or free space")


if __name__ == "__main__":
    sys.exit(main())
