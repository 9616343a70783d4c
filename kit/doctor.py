"""``python -m kit doctor``: what this machine and environment hold, in one screen: versions
(torch and torchvision one build?), GPUs, free disk, the Hugging Face cache, optional packages.
Each row says ``ok``, ``--`` (absent, fine) or ``!!`` (a problem, with its fix; exit code 1).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from kit import cli
from kit.torch_build import BuildMismatch, build_mismatch, mismatch_line, package_version

__all__ = ["OPTIONAL", "Row", "check", "main"]

#: optional packages kit uses when present: distribution name -> what for
OPTIONAL = {
    "tensorboard": "--track tensorboard",
    "wandb": "--track wandb",
    "mlflow": "--track mlflow",
    "optuna": "python -m kit.tune",
    "facenet-pytorch": "--face-detector mtcnn",
}

OK, ABSENT, PROBLEM = "ok", "--", "!!"
Row = tuple[str, str, str]  # (mark, name, what was found)


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB"


def _torch_rows() -> list[Row]:
    try:
        import torch
    except ImportError as err:
        return [(PROBLEM, "torch", f"cannot import ({err}); pip install torch torchvision")]
    rows: list[Row] = [(OK, "torch", torch.__version__)]
    try:
        import torchvision

        boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0]])
        torchvision.ops.nms(boxes, torch.ones(1), 0.5)
    except BuildMismatch as err:
        rows.append((PROBLEM, "torchvision", str(err)))
    except (ImportError, RuntimeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        rows.append((PROBLEM, "torchvision", mismatch_line(first)))
    else:
        why = build_mismatch(torch.__version__, torchvision.__version__)
        mark = PROBLEM if why else OK
        note = mismatch_line(why) if why else "one build with torch (torchvision.ops.nms runs)"
        rows.append((mark, "torchvision", f"{torchvision.__version__}: {note}"))
    if torch.cuda.is_available():
        rows.append((OK, "cuda", f"{torch.version.cuda}, {torch.cuda.device_count()} GPU(s)"))
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            rows.append((OK, f"gpu {i}", f"{p.name}, {_gib(p.total_memory)}"))
    else:
        built = f"torch built for CUDA {torch.version.cuda}" if torch.version.cuda else "CPU build"
        rows.append((ABSENT, "cuda", f"no GPU visible ({built}); training runs on the CPU"))
    return rows


def _disk_row(cache_dir: Path) -> Row:
    """Free space on the disk of ``cache_dir`` (its nearest existing parent)."""
    at = cache_dir.expanduser().resolve()
    while not at.exists() and at != at.parent:
        at = at.parent
    usage = shutil.disk_usage(at)
    text = f"{_gib(usage.free)} free of {_gib(usage.total)} at {at} (caches: {cache_dir})"
    return (OK, "disk", text)


def _hf_row() -> Row:
    try:
        from huggingface_hub import constants, scan_cache_dir
    except ImportError:
        return (ABSENT, "hf cache", "huggingface_hub not installed")
    where = Path(constants.HF_HUB_CACHE)
    offline = " (HF_HUB_OFFLINE=1: no downloads)" if constants.HF_HUB_OFFLINE else ""
    if not where.is_dir():
        return (OK, "hf cache", f"{where}: empty, weights download on first use{offline}")
    try:
        info = scan_cache_dir(where)
    except Exception as err:  # a damaged cache folder must not stop the report
        return (PROBLEM, "hf cache", f"{where}: unreadable ({err})")
    models = sorted(r.repo_id for r in info.repos if r.repo_type == "model")
    shown = f" ({', '.join(models[:5])}{', ...' if len(models) > 5 else ''})" if models else ""
    text = f"{where}: {len(models)} model(s), {_gib(info.size_on_disk)}{shown}{offline}"
    return (OK, "hf cache", text)


def check(cache_dir: Path) -> list[Row]:
    """Every row of the report, in order."""
    rows: list[Row] = [(OK, "python", f"{platform.python_version()} ({sys.executable})")]
    rows += _torch_rows()
    timm = package_version("timm")
    rows.append((OK, "timm", timm) if timm else (PROBLEM, "timm", "missing: pip install timm"))
    rows.append(_disk_row(cache_dir))
    rows.append(_hf_row())
    for name, used_by in OPTIONAL.items():
        version = package_version(name)
        rows.append((OK, name, f"{version} ({used_by})") if version else (ABSENT, name, "absent"))
    return rows


def build_parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(
        prog="python -m kit doctor",
        description="What this machine and environment hold: versions, GPU, disk, caches.",
    )
    p.add_argument("--data-dir", default=None, help="the data folder (its cache/ is measured)")
    p.add_argument("--cache-dir", default=None, help="where caches go (default: DATA_DIR/cache)")
    cli.add_debug_flag(p)
    return p


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    cache = args.cache_dir or (Path(args.data_dir) / "cache" if args.data_dir else "data/cache")
    rows = check(Path(cache))
    width = max(len(name) for _, name, _ in rows)
    for mark, name, text in rows:
        print(f"{mark}  {name:<{width}}  {text}")
    return 1 if any(mark == PROBLEM for mark, _, _ in rows) else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Print the report; exit code 1 when a row found a problem."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # tensorboard's import is chatty
    return cli.run_cli(_main, argv)
