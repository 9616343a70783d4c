"""``python -m kit.faces DATA_DIR [--detector NAME] [--preview out.png]``: precompute the face
boxes of a data folder (progress bar; found / fallback counts), optionally draw a sample grid
of pictures with their face boxes and crops drawn, to see the crop worked."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kit.cli import ArgumentParser, add_debug_flag, run_cli
from kit.config import Config
from kit.data import read_eval, read_train
from kit.data._common import usable_cores
from kit.io import atomic_write
from kit.registry import help_lines

if TYPE_CHECKING:
    from kit.data.pictures import PreparedLoader


def _draw(ax: Any, image: np.ndarray, face: Any, crop: Any, label: str, score: Any) -> None:
    from matplotlib.patches import Rectangle

    ax.imshow(image)
    if face is not None:
        x0, y0, x1, y1 = face
        ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="lime", lw=1.5))
    x0, y0, x1, y1 = crop
    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="yellow", lw=1, ls="--"))
    found = "face" if score is None else f"face {score:.2f}"  # the detector's confidence
    ax.set_title(f"{label}{found}" if face is not None else f"{label}no face: centre", fontsize=7)


def preview(
    out: str | os.PathLike[str],
    groups: dict[str, Sequence[str]],
    loader: PreparedLoader,
) -> Path:
    """Write a PNG grid to ``out``: for each group (``{"train": paths, ...}``) a row of pictures
    with the face box (green; the detector's confidence above) and the crop (yellow, dashed),
    and a row of the prepared network inputs."""
    from matplotlib.figure import Figure

    # torch and albumentations, imported once the command runs: --help needs neither
    from kit.data.dataset import load_rgb
    from kit.transforms import crop_rect

    columns = max(1, max(len(p) for p in groups.values()))
    fig = Figure(figsize=(1.6 * columns, 3.6 * len(groups)), dpi=100)
    axes = fig.subplots(2 * len(groups), columns, squeeze=False)
    for g, (label, paths) in enumerate(groups.items()):
        for c in range(columns):
            top, bottom = axes[2 * g][c], axes[2 * g + 1][c]
            top.set_axis_off()
            bottom.set_axis_off()
            if c >= len(paths):
                continue
            image, face = load_rgb(paths[c]), loader.box(paths[c])
            cfg = loader.cfg
            rect = crop_rect(
                image.shape,
                face,
                crop_mode=cfg.crop_mode,
                crop=cfg.crop,
                image_size=cfg.image_size,
                face_margin=cfg.face_margin,
            )
            score = None if loader.faces is None else loader.faces.scores.get(paths[c])
            _draw(top, image, face, rect, f"{label}: " if c == 0 else "", score)
            bottom.imshow(loader(paths[c]))
    fig.tight_layout()
    return atomic_write(out, lambda fh: fig.savefig(fh, format="png"), mode="wb")


def _parser() -> argparse.ArgumentParser:
    defaults = Config()
    p = ArgumentParser(prog="python -m kit.faces", description=__doc__)
    p.add_argument("data_dir", help="competition data folder (train/, eval/)")
    p.add_argument(
        "--detector",
        default=defaults.face_detector,
        help=f"face detector, one of {help_lines('face_detector')}",
    )
    p.add_argument("--face-boxes", default=None, help="boxes CSV for --detector boxes")
    p.add_argument("--cache-dir", default=None, help="folder of the stored boxes and cache")
    p.add_argument("--margin", type=float, default=defaults.face_margin, help="face margin")
    p.add_argument("--image-size", type=int, nargs=2, default=(380, 380), metavar=("H", "W"))
    p.add_argument("--workers", type=int, default=usable_cores(), help="detection processes")
    p.add_argument("--preview", default=None, metavar="PNG", help="write a sample grid here")
    p.add_argument("--samples", type=int, default=6, help="pictures per row of the preview")
    add_debug_flag(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; returns the exit status (2 with one ``error:`` line for bad input)."""
    fix = "pass another --cache-dir DIR (or --preview PNG), or free space"
    return run_cli(_main, argv, output_fix=fix)


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from kit.faces import prepared_loader  # torch and albumentations: --help needs neither

    cfg = Config(
        data_dir=args.data_dir,
        crop_mode="face",
        face_detector=args.detector,
        face_boxes=args.face_boxes,
        cache_dir=args.cache_dir,
        face_margin=args.margin,
        image_size=tuple(args.image_size),
    ).validate()
    loader = prepared_loader(cfg, args.data_dir, workers=args.workers)
    print(loader.summary)
    if args.preview:
        k = args.samples
        groups = {"train": read_train(args.data_dir)["path"].tolist()[::8][:k]}
        if os.path.isfile(os.path.join(args.data_dir, "eval", "info.csv")):
            groups["eval"] = read_eval(args.data_dir)["path"].tolist()[:k]
        print(f"preview: {preview(args.preview, groups, loader)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
