"""A recipe file's base config: ``recipes/<name>.py`` defines ``config() -> kit.Config``."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from kit.config import Config

__all__ = ["load_recipe"]


def load_recipe(path: str | os.PathLike[str]) -> Config:
    """The :class:`Config` returned by the ``config()`` function of the recipe file ``path``."""
    path = Path(path)
    if not path.is_file() or path.suffix != ".py":
        raise FileNotFoundError(f"recipe {path} not found; give a recipe file, e.g. recipes/x.py")
    name = f"kit_recipe_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    # as `python recipes/x.py` does: the recipe's folder is on sys.path (`from baseline import`)
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    spec.loader.exec_module(module)  # recipes train only under `if __name__ == "__main__"`
    make = getattr(module, "config", None)
    cfg = make() if callable(make) else None
    if not isinstance(cfg, Config):
        raise ValueError(
            f"{path}: a recipe defines config() returning a kit.Config (see recipes/baseline.py)"
        )
    return cfg
