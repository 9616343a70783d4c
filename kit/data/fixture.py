"""A synthetic dataset in exactly the competition layout, for tests, demos and benchmarks.

``python -m kit.data.fixture OUT --people N [--size H W] [--seed S] [--eval-people M]``

Besides the competition's files it writes where it drew each face: ``train/faces.csv`` and
``eval/faces.csv`` (``image_id,x0,y0,x1,y1``; ``image_id`` is the picture's path relative to
the data folder), the boxes file format of ``--face-detector boxes`` (docs/faces.md).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kit import cli
from kit.data._common import STEM_MASK, STEMS
from kit.data._fixture_draw import FACE_COLUMNS, cores, draw_people, put, put_csv
from kit.labels import age_to_group, encode

if TYPE_CHECKING:  # the fixture command does not need the Config
    from kit.config import Config

_log = logging.getLogger("kit")

__all__ = ["FACE_COLUMNS", "FIXTURE", "SMOKE_FIXTURE", "main", "make_fixture", "resolve_data_dir"]

#: (folder, people, picture size (height, width)) of the fixture a run uses when ``data_dir``
#: is None (relative to the current folder), and of a ``--smoke`` run's.
FIXTURE = (Path("data/fixture"), 60, (128, 96))
SMOKE_FIXTURE = (Path("data/fixture-smoke"), 12, (64, 48))

# Real per-person age counts (ages 18..60) of the 2,700 training people; ages are drawn from
# these so the boundary crowding (57-59, and everyone >= 60 being exactly 60) is reproduced.
_AGE_COUNTS = np.array(
    [
        *(192, 407, 267, 41, 58, 72, 62, 82, 44, 15, 25, 16),  # 18..29
        *(17, 3, 7, 5, 13, 19, 8, 3, 14, 6, 20, 7, 13, 18, 13, 27, 14, 10, 39, 31),  # 30..49
        *(80, 63, 78, 64, 82, 100, 123, 106, 159, 85, 192),  # 50..60
    ]
)
_AGES = np.arange(18, 61)
_P_FEMALE = 1658 / 2700
_GROUP_P = np.array([1281, 1227, 192]) / 2700
# The first people cover every extension spelling; the rest are mostly jpg, as in real data.
_FIRST_EXTS = ("jpg", "jpeg", "png", "JPG", "Jpeg", "PNG", "mixed")
_LATER_EXTS, _LATER_P = ("jpg", "jpeg", "png", "JPG"), (0.7, 0.12, 0.12, 0.06)
_APPLE_DOUBLE = b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + bytes(40)


def _attributes(n: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """(gender, age) of ``n`` people: cell counts by largest remainder, every cell once if n>=6."""
    p = np.outer([1 - _P_FEMALE, _P_FEMALE], _GROUP_P).ravel()
    counts = np.floor(n * p).astype(int)
    counts[np.argsort(-(n * p - counts), kind="stable")[: n - counts.sum()]] += 1
    while n >= 6 and counts.min() == 0:
        counts[np.argmax(counts)] -= 1
        counts[np.argmin(counts)] += 1
    people = []
    for cell, count in enumerate(counts):
        gender, group = divmod(cell, 3)
        in_group = age_to_group(_AGES) == group
        w = _AGE_COUNTS * in_group
        people += [(gender, int(a)) for a in rng.choice(_AGES, size=count, p=w / w.sum())]
    return [people[i] for i in rng.permutation(n)]


def _person_ids(n: int, rng: np.random.Generator) -> list[str]:
    numbers = np.sort(rng.choice(np.arange(1, 10 * n + 50), size=n, replace=False))
    ids = [f"{k:06d}" for k in numbers]
    if n >= 2:  # mimic the real "000600" / "000600-1" pairs
        ids[1] = f"{ids[0]}-1"
    return ids


def _extensions(i: int, rng: np.random.Generator) -> list[str]:
    kind = _FIRST_EXTS[i] if i < len(_FIRST_EXTS) else rng.choice(_LATER_EXTS, p=_LATER_P)
    if kind == "mixed":
        return [_FIRST_EXTS[k % 6] for k in range(len(STEMS))]
    return [str(kind)] * len(STEMS)


def _write_train(
    root: Path, n: int, size: tuple[int, int], seed: int, workers: int, progress: bool
) -> None:
    rng = np.random.default_rng([seed, 0])
    people, ids = _attributes(n, rng), _person_ids(n, rng)
    images = root / "train" / "images"
    rows, jobs = [], []
    for i, ((gender, age), pid) in enumerate(zip(people, ids, strict=True)):
        folder = f"{pid}_{('male', 'female')[gender]}_Asian_{age}"
        rows.append((pid, ("male", "female")[gender], "Asian", age, folder))
        files = [
            (f"{stem}.{ext}", stem) for stem, ext in zip(STEMS, _extensions(i, rng), strict=True)
        ]
        jobs.append((images / folder, "train", seed, i, gender * 1000 + age, size, files))
        if i < 2:  # junk that readers must skip
            put(images / folder / "._mask1.jpg", _APPLE_DOUBLE)
    draw_people(root, "train", jobs, workers, progress)
    table = pd.DataFrame(rows, columns=["id", "gender", "race", "age", "path"])
    put_csv(root / "train" / "train.csv", table)


def _write_eval(
    root: Path, n: int, size: tuple[int, int], seed: int, workers: int, progress: bool
) -> None:
    rng = np.random.default_rng([seed, 1])
    people = _attributes(n, rng)
    images = root / "eval" / "images"
    jobs, entries = [], []
    for i, (gender, age) in enumerate(people):
        files = []
        for stem in STEMS:
            name = hashlib.sha1(f"kit-fixture:{seed}:{i}:{stem}".encode()).hexdigest() + ".jpg"
            files.append((name, stem))
            entries.append((name, encode(STEM_MASK[stem], gender, age_to_group(age))))
        jobs.append((images, "eval", seed, i, gender * 1000 + age, size, files))
    draw_people(root, "eval", jobs, workers, progress)
    order = rng.permutation(len(entries))
    answers = pd.DataFrame([entries[j] for j in order], columns=["ImageID", "ans"])
    put_csv(root / "eval" / "info.csv", answers.assign(ans=0))
    put_csv(root / "eval" / "answers.csv", answers)


def make_fixture(
    root: str | os.PathLike[str],
    n_people: int = 60,
    image_size: tuple[int, int] = (128, 96),
    seed: int = 0,
    n_eval_people: int | None = None,
    overwrite: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> Path:
    """Write a synthetic dataset in the competition layout under ``root``; return ``root``.

    ``image_size`` is (height, width), like every size in kit (the real pictures are
    (512, 384)); ``workers`` processes draw the people (default: one per core, one process
    for small fixtures); ``progress`` shows a bar or progress lines. ``n_eval_people``
    defaults to a third of ``n_people`` (0: no eval folder). ``eval/answers.csv`` holds the
    true classes, ``train/faces.csv`` and ``eval/faces.csv`` the true face boxes. Same
    arguments (whatever ``workers``), same
    bytes. An existing ``train/`` or ``eval/`` under ``root`` is an error unless ``overwrite``.
    """
    root = Path(root)
    n_eval = max(1, n_people // 3) if n_eval_people is None else n_eval_people
    size = (int(image_size[0]), int(image_size[1]))
    if n_people < 1 or n_eval < 0 or min(size) < 1:
        raise ValueError(
            f"expected n_people >= 1, n_eval_people >= 0 and a positive image size, got "
            f"n_people={n_people}, n_eval_people={n_eval_people}, image_size={image_size}"
        )
    if workers is None:  # a process pool only pays off beyond a few dozen people
        workers = min(cores(), max(1, (n_people + n_eval) // 24))
    for part in ("train", "eval"):
        if (root / part).exists() and not overwrite:
            raise FileExistsError(
                f"{root / part} already exists; pass overwrite=True (--overwrite) to replace it"
            )
    # Everything is written into a hidden staging folder that is renamed into place at the
    # end: the dataset appears whole or not at all, without kit.io's fsync per file, which
    # made full-size (18,900-picture) builds take minutes.
    root.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".kit-fixture-", dir=root))
    try:
        _write_train(stage, n_people, size, seed, workers, progress)
        if n_eval > 0:
            _write_eval(stage, n_eval, size, seed, workers, progress)
        for part in ("train", "eval"):
            if (root / part).exists():
                shutil.rmtree(root / part)
            if (stage / part).exists():
                os.replace(stage / part, root / part)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write a fixture (with progress) and print where and what; returns the exit
    code (2 with one ``error:`` line on bad input)."""
    return cli.run_cli(_main, argv, output_fix="pass another OUT folder, or free space")


def _main(argv: list[str]) -> None:
    parser = cli.ArgumentParser(
        prog="python -m kit.data.fixture",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("out", type=Path, help="folder to write train/ and eval/ into")
    parser.add_argument("--people", type=int, default=60, help="training people (7 images each)")
    parser.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=FIXTURE[2],
        metavar=("H", "W"),
        help="picture height and width in pixels (the real pictures: 512 384)",
    )
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    parser.add_argument(
        "--eval-people", type=int, default=None, help="eval people (default: a third of --people)"
    )
    parser.add_argument(
        "--workers", type=int, default=None, help="processes drawing people (default: per core)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing train/ eval/")
    cli.add_debug_flag(parser)
    args = parser.parse_args(argv)
    # the progress lines (when the output is not a terminal) go to stdout, for this call only
    log, handler = logging.getLogger("kit"), logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    level = log.level
    log.setLevel(logging.INFO)
    start = time.monotonic()
    try:
        root = make_fixture(
            args.out,
            args.people,
            tuple(args.size),
            args.seed,
            args.eval_people,
            args.overwrite,
            args.workers,
            progress=True,
        )
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    meta = pd.read_csv(root / "train" / "train.csv", dtype={"id": str})
    groups = np.bincount(age_to_group(meta["age"].to_numpy()), minlength=3)
    women = int((meta["gender"] == "female").sum())
    n_eval = len(pd.read_csv(root / "eval" / "info.csv")) if (root / "eval").exists() else 0
    seconds = time.monotonic() - start
    print(f"wrote a synthetic dataset to {root.resolve()} in {seconds:.1f} s")
    print(
        f"  train: {len(meta)} people, {7 * len(meta)} images "
        f"(female {women}, male {len(meta) - women}; "
        f"age <30 {groups[0]}, 30-59 {groups[1]}, >=60 {groups[2]})"
    )
    print(f"  eval: {n_eval} images (true classes in eval/answers.csv)")


def resolve_data_dir(cfg: Config) -> Path:
    """``cfg.data_dir``, or the fixture (built once under ``data/``, relative to the cwd)."""
    if cfg.data_dir is not None:
        return Path(cfg.data_dir).expanduser()
    root, people, size = SMOKE_FIXTURE if cfg.smoke else FIXTURE
    if not (root / "train" / "train.csv").is_file():
        # built beside root and renamed into place, so parallel runs never see half of one
        _log.info("building the synthetic fixture in %s (%d people, first run only)", root, people)
        tmp = root.with_name(f".{root.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        make_fixture(tmp, n_people=people, image_size=size, seed=0)
        try:
            os.replace(tmp, root)
        except OSError:  # another process finished first, or an old partial folder is in the way
            shutil.rmtree(tmp, ignore_errors=True)
            if not (root / "train" / "train.csv").is_file():
                raise
    return root


if __name__ == "__main__":
    sys.exit(main())
