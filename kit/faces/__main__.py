"""``python -m kit.faces DATA_DIR [--detector NAME] [--preview out.png]``: precompute the face
boxes of a data folder (progress bar; found / fallback counts), optionally draw a sample grid."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from kit.cli import ArgumentParser, add_debug_flag, run_cli
from kit.config import Config
from kit.data import read_eval, read_train
from kit.faces import FACE_DETECTORS, prepared_loader, preview


def _parser() -> argparse.ArgumentParser:
    defaults = Config()
    p = ArgumentParser(prog="python -m kit.faces", description=__doc__)
    p.add_argument("data_dir", help="competition data folder (train/, eval/)")
    p.add_argument(
        "--detector",
        default=defaults.face_detector,
        help=f"face detector, one of {FACE_DETECTORS.names()}",
    )
    p.add_argument("--face-boxes", default=None, help="boxes CSV for --detector boxes")
    p.add_argument("--cache-dir", default=None, help="folder of the stored boxes and cache")
    p.add_argument("--margin", type=float, default=defaults.face_margin, help="face margin")
    p.add_argument("--image-size", type=int, nargs=2, default=(380, 380), metavar=("H", "W"))
    p.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
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
