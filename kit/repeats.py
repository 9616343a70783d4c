"""Repeats over seeds: one config trained with several seeds under one parent folder
(``--seeds`` on a recipe's command line, docs/experiments.md), and configs trained side by
side, one process and one torch thread each (``--jobs``; scripts/ablate.py trains its arms so).

The split is held fixed: every repeat validates on the people of the config's own split seed
(``split_seed``, else ``seed``) unless ``vary_split`` asks each seed to draw its own split. The
ledger (``python -m kit.runs``) shows the repeats as one row, mean ± sd over the seeds.
"""

from __future__ import annotations

import multiprocessing as mp
import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TypeVar

from kit.config import Config
from kit.runfolder import create_run_dir

__all__ = ["SEEDS_SUFFIX", "repeat_configs", "seed_list", "train_seeds", "train_side_by_side"]

T = TypeVar("T")

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
    out = []
    for seed in seeds:
        split_seed = None if vary_split or seed == split else split
        out.append(
            cfg.replace(
                seed=seed, split_seed=split_seed, output_dir=str(parent), name=f"{cfg.name}_s{seed}"
            )
        )
    return out


def _one_thread(step: Callable[[Config], T], cfg: Config) -> T:
    """``step(cfg)`` on one torch thread: runs side by side share the cores, and on a CPU
    the thread count changes the rounding of the sums, so one thread each keeps the results
    the same whatever ``jobs``."""
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
    if jobs > 1 and len(seeds) > 1:
        _check_sendable(step, jobs)
    parent = create_run_dir(cfg.output_dir, f"{cfg.name}{SEEDS_SUFFIX}")
    cfgs = repeat_configs(cfg, seeds, parent=parent, vary_split=vary_split)
    return parent, train_side_by_side(step, cfgs, jobs)
