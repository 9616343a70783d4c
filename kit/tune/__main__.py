"""``python -m kit.tune RECIPE --trials N --param NAME=SPEC ... [Config flags]``.

Config flags after the search's own options (``--smoke``, ``--epochs 5``, ``--data-dir D``)
change the recipe's config for every trial, as they would on the recipe's command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kit.cli import ArgumentParser, run_cli
from kit.recipe import parse_args
from kit.tune import DB_NAME, default_storage, load_recipe, run


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m kit.tune",
        description="Search a recipe's hyper-parameters with Optuna (docs/search.md); "
        "any other option is a Config flag applied to every trial.",
    )
    p.add_argument("recipe", help="recipe file whose config() is the starting point")
    p.add_argument("--trials", type=int, required=True, help="trials the study should reach")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="a searched field: lr=log:1e-4:1e-2, warmup_epochs=0:2, loss=cross_entropy,focal",
    )
    p.add_argument("--study", help="study name (default: the recipe's name)")
    p.add_argument(
        "--storage", help=f"Optuna database URL (default: sqlite:///<output-dir>/{DB_NAME})"
    )
    p.add_argument("--sampler-seed", type=int, help="seed of the TPE sampler")
    p.add_argument(
        "--prune-after",
        type=int,
        default=5,
        metavar="N",
        help="median pruning starts once N trials are complete (default: 5)",
    )
    p.add_argument("--no-prune", action="store_true", help="never stop a trial early")
    p.add_argument("--plot", metavar="DIR", help="write history.png and importance.png here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the search and print what it found; 2 on bad input, with the reason on stderr."""
    return run_cli(_main, argv, output_fix="pass another --storage or --plot DIR, or free space")


def _main(argv: list[str]) -> int:
    args, rest = _parser().parse_known_args(argv)
    base = parse_args(load_recipe(args.recipe), rest)
    import optuna  # after the command line parsed: --help answers at once

    from kit.tune.study import report, write_plots

    pruner = (
        optuna.pruners.NopPruner()
        if args.no_prune
        else optuna.pruners.MedianPruner(n_startup_trials=args.prune_after)
    )
    storage = args.storage or default_storage(base.output_dir)
    study = run(
        base,
        args.param,
        args.trials,
        study=args.study,
        storage=storage,
        seed=args.sampler_seed,
        pruner=pruner,
    )
    print(report(study, base, storage), end="")
    if args.plot:
        for path in write_plots(study, args.plot):
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
