"""Whether torch and torchvision are one build, and one line saying so when they are not.

A torchvision built for another torch fails on its own import with ``RuntimeError: operator
torchvision::nms does not exist``, 50 lines into a traceback through timm.
:func:`guard_torchvision_import` (installed by ``import kit``) turns that into one ``error:``
line naming both versions and the reinstall that fixes it. Versions come from package metadata,
so installing the guard imports neither.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import re
import sys
from importlib import metadata
from types import ModuleType, TracebackType

from kit.errors import KitError

__all__ = [
    "BuildMismatch",
    "build_mismatch",
    "guard_torchvision_import",
    "mismatch_line",
    "package_version",
    "reinstall_command",
]

#: what torchvision's import raises when its compiled operators do not fit the torch beside it
_OPERATOR_MISSING = re.compile(r"operator torchvision::\w+ does not exist")


class BuildMismatch(KitError, ImportError):
    """torchvision cannot load beside this torch: the message names both and the fix."""


def package_version(name: str) -> str | None:
    """The installed version of distribution ``name`` (None when not installed), unimported."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _split(version: str) -> tuple[tuple[int, ...], str]:
    """``"2.13.0+cpu"`` -> ``((2, 13), "cpu")``: major and minor, and the build suffix."""
    public, _, local = version.partition("+")
    numbers = tuple(int(n) for n in re.findall(r"\d+", public)[:2])
    return numbers, local


def reinstall_command(torch_version: str) -> str:
    """The pip command that installs torch and a torchvision of the same build."""
    _, local = _split(torch_version)  # PyPI's wheels carry no suffix, and need no index
    own_index = local == "cpu" or re.fullmatch(r"cu\d+|rocm[\d.]+", local or "")
    index = f" --index-url https://download.pytorch.org/whl/{local}" if own_index else ""
    return f"pip install --force-reinstall torch torchvision{index}"


def build_mismatch(torch_version: str, torchvision_version: str) -> str | None:
    """Why these two versions are not one build (None when they are): torchvision 0.(m+15)
    goes with torch 2.m (0.15 with 2.0, 0.29 with 2.14), and both carry one build suffix
    (``+cpu``, ``+cu124``, or none for PyPI's)."""
    (t_numbers, t_local), (v_numbers, v_local) = _split(torch_version), _split(torchvision_version)
    reasons = []
    if len(t_numbers) == 2 and len(v_numbers) == 2 and t_numbers[0] == 2:
        wanted = t_numbers[1] + 15
        if v_numbers != (0, wanted):
            reasons.append(f"torch 2.{t_numbers[1]} needs torchvision 0.{wanted}")
    if t_local != v_local:
        reasons.append(
            f"builds differ: torch {'+' + t_local if t_local else 'without suffix'}, "
            f"torchvision {'+' + v_local if v_local else 'without suffix'}"
        )
    return "; ".join(reasons) or None


def mismatch_line(cause: str = "") -> str:
    """One line: both versions, what is wrong with them, the command that fixes it."""
    loaded = sys.modules.get("torch")  # its __version__ carries the build suffix (+cu124)
    torch_v = getattr(loaded, "__version__", None) or package_version("torch") or "?"
    vision_v = package_version("torchvision") or "?"
    why = build_mismatch(torch_v, vision_v) if "?" not in (torch_v, vision_v) else None
    detail = "; ".join(part for part in (cause, why) if part)
    return (
        f"torch {torch_v} and torchvision {vision_v} are not one build"
        + (f" ({detail})" if detail else "")
        + f": reinstall them together: {reinstall_command(torch_v)} "
        "(docs/troubleshooting.md, torchvision-build)"
    )


class _Guarded(importlib.abc.Loader):
    """torchvision's own loader, with its operator error turned into :class:`BuildMismatch`."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        module.__loader__ = self.loader  # torchvision sees its usual loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        try:
            self.loader.exec_module(module)
        except RuntimeError as err:
            found = _OPERATOR_MISSING.search(str(err))
            if found is None or os.environ.get("KIT_DEBUG", "").strip() not in ("", "0"):
                raise
            sys.excepthook = _one_line  # raised while a module is imported, outside run_cli
            raise BuildMismatch(mismatch_line(found.group(0))) from None


def _one_line(kind: type[BaseException], err: BaseException, tb: TracebackType | None) -> None:
    """An uncaught :class:`BuildMismatch` ends the process like kit's other errors: one
    ``error:`` line, exit code 2; anything else as Python would."""
    if not isinstance(err, BuildMismatch):
        sys.__excepthook__(kind, err, tb)
        return
    print(f"error: {err}", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(2)  # an excepthook cannot choose the exit code; nothing has started yet


class _TorchvisionFinder(importlib.abc.MetaPathFinder):
    """Finds torchvision as the finders after it do, and hands it the guarded loader."""

    def find_spec(self, name, path=None, target=None):
        if name != "torchvision" or name in sys.modules:
            return None
        later = sys.meta_path[sys.meta_path.index(self) + 1 :] if self in sys.meta_path else []
        for finder in later:
            find = getattr(finder, "find_spec", None)
            spec = None if find is None else find(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Guarded(spec.loader)
                return spec
        return None


def guard_torchvision_import() -> None:
    """Let a torchvision that does not fit this torch fail with one line (a
    :class:`BuildMismatch`), not a traceback through timm; a no-op once torchvision is loaded.

    A finder on ``sys.meta_path`` rather than a check at start-up: finding the versions out by
    importing torch would cost every ``--help`` a second or two."""
    if "torchvision" in sys.modules:
        return
    if not any(isinstance(f, _TorchvisionFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _TorchvisionFinder())
