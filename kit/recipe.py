"""What a recipe calls: ``main(config)`` (its whole command line: flags, training, errors),
``main(config, train=fn)`` for a recipe that does more than one ``fit``, or ``parse_args`` alone.

``--seeds 3`` (or ``--seeds 0 1 2``) trains the config once per seed under one parent folder
(:func:`train_seeds`, docs/experiments.md), ``--jobs N`` of them side by side
(:func:`train_side_by_side`). Every repeat validates on the people of the config's own split
seed unless ``vary_split``; the ledger shows the repeats as one row, mean ± sd.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from kit.cli import run_cli
from kit.config import Config, apply_file, build_parser, namespace_changes
from kit.progress import in_notebook

if TYPE_CHECKING:
    import albumentations as A

    from kit.runfolder import Run

# Torch, timm, pandas and every training module load after the command line parsed, where a
# step needs them (late imports of heavy dependencies, closing no cycle): --help,
# --save-config and a bad flag answer at once (docs/architecture.md).

__all__ = [
    "SEEDS_SUFFIX",
    "first_paragraph",
    "main",
    "parse_args",
    "repeat_configs",
    "seed_list",
    "train_seeds",
    "train_side_by_side",
]

T = TypeVar("T")


def first_paragraph(doc: str | None) -> str | None:
    """The first paragraph of a docstring, on one line; None for no docstring."""
    text = (doc or "").strip().split("\n\n")[0]
    return " ".join(text.split()) or None


def parse_args(
    base: Config, argv: Sequence[str] | None = None, description: str | None = None
) -> Config:
    """``base`` overridden by ``--config FILE`` and then by command-line flags.

    ``--resume RUN_DIR`` starts from that run's saved config instead of ``base``;
    ``--save-config FILE`` writes the resolved config and exits; ``description`` opens
    ``--help``. ``--estimate`` and ``--find-lr`` act only through :func:`main`.
    """
    return _parse(base, argv, description, repeats_allowed=False)[0]


def _parse(
    base: Config,
    argv: Sequence[str] | None,
    description: str | None = None,
    repeats_allowed: bool = True,
) -> tuple[Config, dict[str, object], argparse.Namespace]:
    """The config (see :func:`parse_args`), the repeat flags (``seeds``, ``jobs``,
    ``vary_split``) and the namespace (``--estimate``, ``--find-lr``); ``repeats_allowed``
    False refuses the repeat flags (a caller that trains once)."""
    parser = build_parser(base, description)
    if repeats_allowed:
        group = parser.add_argument_group("repeats over seeds (docs/experiments.md)")
        group.add_argument(
            "--seeds",
            type=int,
            nargs="+",
            default=None,
            metavar="N|SEED",
            help="train once per seed under one parent folder: a count N (seeds --seed, --seed "
            "+ 1, ...) or two or more seeds; the validation people stay those of --seed (or "
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
    ns = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    repeats = {k: vars(ns).pop(k, None) for k in ("seeds", "jobs", "vary_split")}
    repeats["jobs"] = repeats["jobs"] or 1
    changes = namespace_changes(ns, type(base))
    if repeats["seeds"] is None and (repeats["jobs"] != 1 or repeats["vary_split"]):
        parser.error("--jobs and --vary-split go with --seeds")
    if repeats["seeds"] is not None and changes.get("resume"):
        parser.error("--seeds trains new runs: leave out --resume")
    cfg = base
    if changes.get("resume"):
        from kit.runfolder import CONFIG  # pandas: not for --help or a plain run's flags

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
    return cfg, repeats, ns


def _train_repeats(step: Callable[[Config], T], cfg: Config, repeats: dict) -> list[T]:
    """``step`` once per seed under one parent folder; prints the spread of the scores."""
    from kit.metrics import mean_sd
    from kit.runfolder import Run, run_score

    parent, results = train_seeds(step, cfg, **repeats)  # seeds, jobs, vary_split
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
    description: str | None = None,
) -> Run | T | list[Run | T]:
    """A recipe's whole command line: ``fit(parse_args(base, argv), train_transform)``; returns
    the :class:`Run` (with ``--seeds``, the list of each seed's).

    ``train``: what to do with the parsed config instead (a recipe that trains more than once);
    ``main`` returns what it returns. Errors end as :func:`kit.cli.run_cli` ends them (one
    ``error:`` line, exit code 2). ``description`` opens ``--help``; by default the first
    paragraph of the docstring of the module that calls ``main`` (the recipe's).
    """
    if description is None:
        description = first_paragraph(sys._getframe(1).f_globals.get("__doc__"))
    if train is not None and train_transform is not None:
        raise TypeError("kit.main takes train or train_transform: pass the transform to kit.fit")
    # a partial of a module-level function, not a closure: --jobs sends it to other processes
    step = train if train is not None else partial(_fit, train_transform=train_transform)
    done: list[Run | T | list[Run | T]] = []

    def command(args: list[str]) -> None:
        cfg, repeats, ns = _parse(base, args, description)
        if ns.estimate is not None or ns.find_lr is not None:
            done.append(_measure(step, cfg, ns))
        elif repeats["seeds"] is None:
            done.append(step(cfg))
        else:
            done.append(_train_repeats(step, cfg, repeats))

    if argv is None and in_notebook():  # a kernel's sys.argv holds its own flags, not ours
        argv = []
    if code := run_cli(command, argv):
        raise SystemExit(code)
    return done[0]


def _fit(cfg: Config, train_transform: A.BasicTransform | None = None) -> Run:
    from kit.train import fit  # torch: after the command line parsed

    return fit(cfg, train_transform)


def _measure(step: Callable[[Config], object], cfg: Config, ns: argparse.Namespace) -> None:
    """``--estimate`` / ``--find-lr``: the recipe's code runs, and its first ``kit.fit``
    measures instead of training (the recipe's own model and transform); nothing after it runs."""
    from kit import estimate, find_lr  # torch: after the command line parsed
    from kit.train.fit import INSTEAD_OF_FIT, Measured

    if ns.estimate is not None:
        action = partial(estimate.report, sample=ns.estimate or None)
    else:
        action = partial(find_lr.report, steps=ns.find_lr or None)
    token = INSTEAD_OF_FIT.set(action)
    try:
        step(cfg)
    except Measured:
        return
    finally:
        INSTEAD_OF_FIT.reset(token)
    print("the recipe never called kit.fit: nothing to measure")


#: The parent folder of a ``--seeds`` repeat is ``<output_dir>/<time>_<name>_seeds``.
SEEDS_SUFFIX = "_seeds"


def seed_list(seeds: Sequence[int], first: int) -> list[int]:
    """``[n]``: the n seeds ``first, first + 1, ...``; two or more values: those seeds."""
    seeds = list(seeds)
    if len(seeds) == 1:
        if seeds[0] < 1:
            raise ValueError(f"--seeds {seeds[0]}: expected a count of at least 1, or 2+ seeds")
        return [first + k for k in range(seeds[0])]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds {' '.join(map(str, seeds))}: a seed is repeated")
    return seeds


def repeat_configs(
    cfg: Config, seeds: Sequence[int], *, parent: str | Path, vary_split: bool = False
) -> list[Config]:
    """``cfg`` once per seed, written under ``parent``, named ``<name>_s<seed>``.

    The split stays ``cfg``'s (``split_seed`` set where it differs from the repeat's seed, so
    the repeat of ``cfg``'s own seed is ``cfg`` itself), unless ``vary_split``.
    """
    split = cfg.seed if cfg.split_seed is None else cfg.split_seed
    return [
        cfg.replace(
            seed=seed,
            split_seed=None if vary_split or seed == split else split,
            output_dir=str(parent),
            name=f"{cfg.name}_s{seed}",
        )
        for seed in seeds
    ]


def _one_thread(step: Callable[[Config], T], cfg: Config) -> T:
    """``step(cfg)`` on one torch thread: runs side by side share the cores, and on a CPU the
    thread count changes the rounding of sums, so results stay the same whatever ``jobs``."""
    import torch  # the worker's own interpreter: torch only where training happens

    torch.set_num_threads(1)
    return step(cfg)


def _check_sendable(step: Callable[[Config], T], jobs: int) -> None:
    """Refuse, before anything is written, a ``step`` that other processes cannot take."""
    try:
        pickle.dumps(step)
    except (pickle.PicklingError, AttributeError, TypeError) as err:
        name = getattr(step, "__qualname__", repr(step))
        raise ValueError(
            f"--jobs {jobs} sends {name} to other processes, which cannot take it ({err}); "
            "define it at the top level of the recipe, or train with --jobs 1"
        ) from err


def train_side_by_side(step: Callable[[Config], T], cfgs: Sequence[Config], jobs: int) -> list[T]:
    """``step`` of each config, ``jobs`` processes side by side (1: one after the other, in
    this process). ``step`` must be picklable (a module-level function or a partial of one)."""
    if jobs < 1:
        raise ValueError(f"--jobs {jobs}: expected at least 1")
    if jobs == 1 or len(cfgs) == 1:
        return [step(cfg) for cfg in cfgs]
    _check_sendable(step, jobs)
    # process pools: only when runs go side by side, not for every recipe's --help
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    # spawn: a fresh interpreter per worker, no forked torch thread pools
    with ProcessPoolExecutor(min(jobs, len(cfgs)), mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(_one_thread, [step] * len(cfgs), cfgs))


def train_seeds(
    step: Callable[[Config], T],
    cfg: Config,
    seeds: Sequence[int],
    *,
    jobs: int = 1,
    vary_split: bool = False,
) -> tuple[Path, list[T]]:
    """Train ``cfg`` once per seed under a new parent folder; returns it and each result."""
    from kit.runfolder import create_run_dir  # pandas: only for --seeds

    if jobs > 1 and len(seeds) > 1:
        _check_sendable(step, jobs)
    parent = create_run_dir(cfg.output_dir, f"{cfg.name}{SEEDS_SUFFIX}")
    cfgs = repeat_configs(cfg, seeds, parent=parent, vary_split=vary_split)
    return parent, train_side_by_side(step, cfgs, jobs)
