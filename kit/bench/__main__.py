"""Command line of the benchmark: ``python -m kit.bench --help``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import asdict

from kit import cli, io
from kit.bench import BenchOptions, format_report


def _workers(text: str) -> int | str:
    if text != "auto" and not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected an integer >= 0 or auto, got {text!r}")
    return text if text == "auto" else int(text)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's options; defaults are those of :class:`BenchOptions`."""
    p = cli.ArgumentParser(
        prog="python -m kit.bench",
        description="Images per second of kit's training pipeline with and without the picture "
        "cache, against the model's own limit and a plain per-sample baseline.",
    )
    p.set_defaults(**asdict(BenchOptions()))
    size = {"type": _positive, "nargs": 2, "metavar": ("H", "W")}
    p.add_argument("--data-dir", help="competition data (default: a fixture)")
    p.add_argument("--people", type=_positive, help="fixture size in people")
    p.add_argument(
        "--fixture-size", **size, help="fixture picture height and width (default: 512 384)"
    )
    p.add_argument("--model", help="timm model name")
    p.add_argument("--image-size", **size, help="network input (height width)")
    p.add_argument("--batch-size", type=_positive)
    p.add_argument("--workers", type=_workers, help="loader workers or auto")
    p.add_argument("--steps", type=_positive, help="timed batches per phase")
    p.add_argument("--warmup", type=int, help="untimed batches first")
    p.add_argument("--threads", type=_positive, help="torch compute threads")
    p.add_argument(
        "--repeats", type=_positive, help="the median is reported, with the fastest and slowest"
    )
    p.add_argument(
        "--data-workers",
        type=_workers,
        nargs="+",
        metavar="N",
        help="data-only sweep (default 0 1 2 4 .. cores)",
    )
    p.add_argument("--device", help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction)
    p.add_argument("--amp-dtype", help="autocast dtype with --amp: auto, bfloat16 or float16")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction)
    p.add_argument("--compile", action=argparse.BooleanOptionalAction)
    p.add_argument("--preset", help="augmentation preset: base or strong")
    p.add_argument(
        "--device-aug", help="training batches augmented on the device: none, flip, strong"
    )
    p.add_argument(
        "--data-only",
        action="store_true",
        help="only the data side per worker count (no model, no baseline)",
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--json", metavar="OUT.json", help="also write the figures")
    cli.add_debug_flag(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit code (2 with one ``error:`` line on bad input)."""
    return cli.run_cli(_main, argv, output_fix="pass another --json PATH, or free space")


def _main(argv: list[str]) -> int:
    parser = build_parser()
    args = vars(parser.parse_args(argv))
    args.pop("debug")
    out = args.pop("json")
    if args["warmup"] < 0:
        parser.error("argument --warmup: expected an integer >= 0")
    if args["data_workers"] is not None:
        if "auto" in args["data_workers"]:
            parser.error(
                "argument --data-workers: expected worker counts (integers >= 0), not auto"
            )
        args["data_workers"] = tuple(args["data_workers"])
    for key in ("image_size", "fixture_size"):
        args[key] = tuple(args[key])
    opts = BenchOptions(**args)
    from kit.bench.measure import run_benchmark  # torch: after the command line parsed

    result = run_benchmark(opts, log=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_report(result))
    if out:
        io.write_json(out, result)
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
