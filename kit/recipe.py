"""What a recipe calls: ``main(config)`` (its whole command line: flags, training, errors),
``main(config, train=fn)`` for a recipe that does more than one ``fit``, or ``parse_args`` alone
on top of its base ``Config``.

Precedence is recipe values < ``--config FILE`` < command-line flags; ``--resume RUN_DIR``
starts from that run's saved config instead of the recipe's.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

import albumentations as A

from kit import estimate, find_lr
from kit._config_cli import build_parser, namespace_changes
from kit.cli import run_cli
from kit.config import Config, apply_file
from kit.runfolder import CONFIG, Run
from kit.train import fit
from kit.train.fit import INSTEAD_OF_FIT, Measured

__all__ = ["main", "parse_args"]

T = TypeVar("T")


def parse_args(base: Config, argv: Sequence[str] | None = None) -> Config:
    """``base`` overridden by ``--config FILE`` and then by command-line flags.

    ``--resume RUN_DIR`` starts from that run's saved config instead of ``base``.
    ``--save-config FILE`` writes the resolved config and exits. ``--estimate`` and
    ``--find-lr`` are parsed but act only through :func:`main`.
    """
    return _parse(base, argv)[0]


def _parse(base: Config, argv: Sequence[str] | None) -> tuple[Config, argparse.Namespace]:
    parser = build_parser(base)
    ns = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    changes = namespace_changes(ns, type(base))
    cfg = base
    if changes.get("resume"):
        cfg = apply_file(cfg, Path(changes["resume"]) / CONFIG, saved=True)
    if ns.config:
        cfg = apply_file(cfg, ns.config)
    cfg = cfg.replace(**changes)
    if ns.save_config:
        cfg.save(ns.save_config)
        print(f"wrote {ns.save_config}; train with it: --config {ns.save_config}")
        raise SystemExit(0)
    return cfg, ns


def main(
    base: Config,
    train_transform: A.BasicTransform | None = None,
    argv: Sequence[str] | None = None,
    *,
    train: Callable[[Config], T] | None = None,
) -> Run | T:
    """A recipe's whole command line: ``fit(parse_args(base, argv), train_transform)``.

    ``train``: what to do with the parsed config instead (a recipe that trains more than once,
    or reports more); ``main`` returns what it returns. kit's own errors (bad data, config, run
    folder, disk) end the process with one ``error:`` line and exit code 2 (``--debug`` or
    ``KIT_DEBUG=1`` shows the traceback); Ctrl-C and SIGTERM with 130 and 143, after the run
    recorded where it stopped. A bug keeps its traceback. Returns the :class:`Run` when
    training finished (``fit`` logs its scores and folder).
    """
    if train is not None and train_transform is not None:
        raise TypeError("kit.main takes train or train_transform: pass the transform to kit.fit")
    step = train if train is not None else (lambda cfg: fit(cfg, train_transform))
    done: list[Run | T] = []

    def command(args: list[str]) -> int:
        cfg, ns = _parse(base, args)
        if ns.estimate is not None or ns.find_lr is not None:
            _measure(step, cfg, ns)
            done.append(None)
            return 0
        done.append(step(cfg))
        return 0

    code = run_cli(command, argv)
    if code:
        raise SystemExit(code)
    return done[0]


def _measure(step: Callable[[Config], object], cfg: Config, ns: argparse.Namespace) -> None:
    """``--estimate`` / ``--find-lr``: the recipe's own code runs, and its first ``kit.fit``
    measures instead of training (so a recipe's stand-in model or transform is what is
    measured); nothing after it runs."""
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
