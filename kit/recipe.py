"""What a recipe calls: ``main(config)`` (its whole command line: flags, training, errors),
``main(config, train=fn)`` for a recipe that does more than one ``fit``, or ``parse_args`` alone
on top of its base ``Config``.

Precedence is recipe values < ``--config FILE`` < command-line flags; ``--resume RUN_DIR``
starts from that run's saved config instead of the recipe's.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from kit._config_cli import build_parser, namespace_changes
from kit.cli import run_cli
from kit.config import Config, apply_file

if TYPE_CHECKING:
    import albumentations as A

    from kit.runfolder import Run

__all__ = ["first_paragraph", "main", "parse_args"]

T = TypeVar("T")


def first_paragraph(doc: str | None) -> str | None:
    """The first paragraph of a docstring, on one line; None for no docstring."""
    text = (doc or "").strip().split("\n\n")[0]
    return " ".join(text.split()) or None


def parse_args(
    base: Config, argv: Sequence[str] | None = None, description: str | None = None
) -> Config:
    """``base`` overridden by ``--config FILE`` and then by command-line flags.

    ``--resume RUN_DIR`` starts from that run's saved config instead of ``base``.
    ``--save-config FILE`` writes the resolved config and exits. ``description`` opens
    ``--help`` (what the recipe does, needs and costs).
    """
    parser = build_parser(base, description)
    ns = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    changes = namespace_changes(ns, type(base))
    cfg = base
    if changes.get("resume"):
        from kit.runfolder import CONFIG  # pandas: not for --help or a plain run's flags

        cfg = apply_file(cfg, Path(changes["resume"]) / CONFIG, saved=True)
    if ns.config:
        cfg = apply_file(cfg, ns.config)
    cfg = cfg.replace(**changes)
    if ns.save_config:
        cfg.save(ns.save_config)
        print(f"wrote {ns.save_config}; train with it: --config {ns.save_config}")
        raise SystemExit(0)
    return cfg


def main(
    base: Config,
    train_transform: A.BasicTransform | None = None,
    argv: Sequence[str] | None = None,
    *,
    train: Callable[[Config], T] | None = None,
    description: str | None = None,
) -> Run | T:
    """A recipe's whole command line: ``fit(parse_args(base, argv), train_transform)``.

    ``train``: what to do with the parsed config instead (a recipe that trains more than once,
    or reports more); ``main`` returns what it returns. kit's own errors (bad data, config, run
    folder, disk) end the process with one ``error:`` line and exit code 2 (``--debug`` or
    ``KIT_DEBUG=1`` shows the traceback); Ctrl-C and SIGTERM with 130 and 143, after the run
    recorded where it stopped. A bug keeps its traceback. Returns the :class:`Run` when
    training finished (``fit`` logs its scores and folder).

    ``description`` opens ``--help``; by default the first paragraph of the docstring of the
    module that calls ``main`` (the recipe's: what it does, needs and costs).
    """
    if description is None:
        description = first_paragraph(sys._getframe(1).f_globals.get("__doc__"))
    if train is not None and train_transform is not None:
        raise TypeError("kit.main takes train or train_transform: pass the transform to kit.fit")

    def fit_it(cfg: Config) -> Run:
        # torch, timm and every training module load here, after the command line parsed:
        # --help, --save-config and a bad flag answer at once (docs/architecture.md)
        from kit.train import fit

        return fit(cfg, train_transform)

    step = train if train is not None else fit_it
    done: list[Run | T] = []

    def command(args: list[str]) -> int:
        done.append(step(parse_args(base, args, description)))
        return 0

    code = run_cli(command, argv)
    if code:
        raise SystemExit(code)
    return done[0]
