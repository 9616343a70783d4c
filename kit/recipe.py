"""What a recipe calls: its command line (``parse_args``) on top of its base ``Config``.

Precedence is recipe values < ``--config FILE`` < command-line flags; ``--resume RUN_DIR``
starts from that run's saved config instead of the recipe's.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from kit._config_cli import build_parser, namespace_changes
from kit.config import Config, apply_file
from kit.runfolder import CONFIG

__all__ = ["parse_args"]


def parse_args(base: Config, argv: Sequence[str] | None = None) -> Config:
    """``base`` overridden by ``--config FILE`` and then by command-line flags.

    ``--resume RUN_DIR`` starts from that run's saved config instead of ``base``.
    ``--save-config FILE`` writes the resolved config and exits.
    """
    parser = build_parser(base)
    ns = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    changes = namespace_changes(ns, type(base))
    cfg = base
    if changes.get("resume"):
        cfg = apply_file(cfg, Path(changes["resume"]) / CONFIG)
    if ns.config:
        cfg = apply_file(cfg, ns.config)
    cfg = cfg.replace(**changes)
    if ns.save_config:
        cfg.save(ns.save_config)
        print(f"wrote {ns.save_config}; train with it: --config {ns.save_config}")
        raise SystemExit(0)
    return cfg
