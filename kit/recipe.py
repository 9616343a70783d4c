"""What a recipe calls: ``main(config)`` (its whole command line: flags, training, errors),
``main(config, train=fn)`` for a recipe that does more than one ``fit``, or ``parse_args`` alone
on top of its base ``Config``.

Precedence is recipe values < ``--config FILE`` < command-line flags; ``--resume RUN_DIR``
starts from that run's saved config instead of the recipe's. ``--seeds 3`` (or ``--seeds 0 1
2``) trains the config once per seed under one parent folder (:mod:`kit.repeats`), ``--jobs
N`` of them side by side.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import albumentations as A

from kit._config_cli import build_parser, namespace_changes
from kit.cli import run_cli
from kit.config import Config, apply_file
from kit.noise import mean_sd
from kit.repeats import seed_list, train_seeds
from kit.runfolder import CONFIG, Run, run_score
from kit.train import fit

__all__ = ["main", "parse_args"]

T = TypeVar("T")


def parse_args(base: Config, argv: Sequence[str] | None = None) -> Config:
    """``base`` overridden by ``--config FILE`` and then by command-line flags.

    ``--resume RUN_DIR`` starts from that run's saved config instead of ``base``.
    ``--save-config FILE`` writes the resolved config and exits.
    """
    return _parse(base, argv, repeats_allowed=False)[0]


_REPEAT_FLAGS = ("seeds", "jobs", "vary_split")


def _add_repeat_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("repeats over seeds (docs/experiments.md)")
    group.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        metavar="N|SEED",
        help="train once per seed under one parent folder: a count N (seeds --seed, --seed + 1, "
        "...) or two or more seeds; the validation people stay those of --seed (or "
        "--split-seed) unless --vary-split",
    )
    group.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="with --seeds: train this many side by side, one process and torch thread each",
    )
    group.add_argument(
        "--vary-split",
        action="store_true",
        default=False,
        help="with --seeds: each seed also draws its own split (other validation people)",
    )


def _parse(
    base: Config, argv: Sequence[str] | None, repeats_allowed: bool = True
) -> tuple[Config, dict[str, object]]:
    """The config (see :func:`parse_args`) and the repeat flags (``seeds``, ``jobs``,
    ``vary_split``); ``repeats_allowed`` False refuses them (a caller that trains once)."""
    parser = build_parser(base)
    if repeats_allowed:
        _add_repeat_flags(parser)
    ns = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    repeats = {k: vars(ns).pop(k, None) for k in _REPEAT_FLAGS}
    repeats["jobs"] = repeats["jobs"] or 1
    changes = namespace_changes(ns, type(base))
    if repeats["seeds"] is None and (repeats["jobs"] != 1 or repeats["vary_split"]):
        parser.error("--jobs and --vary-split go with --seeds")
    if repeats["seeds"] is not None and changes.get("resume"):
        parser.error("--seeds trains new runs: leave out --resume")
    cfg = base
    if changes.get("resume"):
        cfg = apply_file(cfg, Path(changes["resume"]) / CONFIG, saved=True)
    if ns.config:
        cfg = apply_file(cfg, ns.config)
    cfg = cfg.replace(**changes)
    if repeats["seeds"] is not None:
        try:
            repeats["seeds"] = seed_list(repeats["seeds"], cfg.seed)
        except ValueError as err:
            parser.error(str(err))
    if ns.save_config:
        cfg.save(ns.save_config)
        print(f"wrote {ns.save_config}; train with it: --config {ns.save_config}")
        raise SystemExit(0)
    return cfg, repeats


def _train_repeats(step: Callable[[Config], T], cfg: Config, repeats: dict) -> list[T]:
    """``step`` once per seed under one parent folder; prints the spread of the scores."""
    parent, results = train_seeds(
        step, cfg, repeats["seeds"], jobs=repeats["jobs"], vary_split=repeats["vary_split"]
    )
    scores = [run_score(r.summary) for r in results if isinstance(r, Run) and r.summary]
    if scores:
        mean, sd, n = mean_sd(scores)
        spread = "" if sd is None else f" ± {sd:.4f}"
        print(f"{n} seeds under {parent}: val macro F1 {mean:.4f}{spread} (mean ± sd)")
    print(f"compare: python -m kit.runs {Path(cfg.output_dir)} --vs BASELINE")
    return results


def main(
    base: Config,
    train_transform: A.BasicTransform | None = None,
    argv: Sequence[str] | None = None,
    *,
    train: Callable[[Config], T] | None = None,
) -> Run | T | list[Run | T]:
    """A recipe's whole command line: ``fit(parse_args(base, argv), train_transform)``.

    With ``--seeds`` it trains once per seed (:mod:`kit.repeats`) and returns the list of
    what each training returned.

    ``train``: what to do with the parsed config instead (a recipe that trains more than once,
    or reports more); ``main`` returns what it returns. kit's own errors (bad data, config, run
    folder, disk) end the process with one ``error:`` line and exit code 2 (``--debug`` or
    ``KIT_DEBUG=1`` shows the traceback); Ctrl-C and SIGTERM with 130 and 143, after the run
    recorded where it stopped. A bug keeps its traceback. Returns the :class:`Run` when
    training finished (``fit`` logs its scores and folder).
    """
    if train is not None and train_transform is not None:
        raise TypeError("kit.main takes train or train_transform: pass the transform to kit.fit")
    # a partial, not a lambda: --jobs sends it to other processes
    step = train if train is not None else functools.partial(fit, train_transform=train_transform)
    done: list[Run | T | list[Run | T]] = []

    def command(args: list[str]) -> int:
        cfg, repeats = _parse(base, args)
        done.append(step(cfg) if repeats["seeds"] is None else _train_repeats(step, cfg, repeats))
        return 0

    code = run_cli(command, argv)
    if code:
        raise SystemExit(code)
    return done[0]
