"""A synthetic dataset in exactly the competition layout, for tests, demos and benchmarks.

``python -m kit.data.fixture OUT --people N [--size H W] [--seed S] [--eval-people M]``

Besides the competition's files it writes each drawn face's box, ``train/faces.csv`` and
``eval/faces.csv``, in the format of ``--face-detector boxes`` (docs/faces.md).

Visible cues carry the labels. Mask: over nose and mouth (wear), below the nose (incorrect) or
none. Gender: hair length (long down the sides of the face for most women). Age: hair greyness
and forehead lines, both continuous in age, so ages near the group boundaries stay genuinely
hard. Every picture has its own seeded generator: same bytes in any order, in any process.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from PIL import Image, ImageFilter

from kit import cli
from kit.data._common import STEM_MASK, STEMS, pool_map, usable_cores
from kit.labels import age_to_group, encode
from kit.progress import Progress

if TYPE_CHECKING:  # the fixture command does not need the Config
    from kit.config import Config

_log = logging.getLogger("kit")

__all__ = ["FACE_COLUMNS", "FIXTURE", "SMOKE_FIXTURE", "main", "make_fixture", "resolve_data_dir"]

#: (folder, people, picture size (height, width)) of a run's fixture when ``data_dir`` is None,
#: and of a ``--smoke`` run's.
FIXTURE = (Path("data/fixture"), 60, (128, 96))
SMOKE_FIXTURE = (Path("data/fixture-smoke"), 12, (64, 48))

# Real per-person age counts (ages 18..60) of the 2,700 training people: the boundary crowding
# (57-59, and everyone >= 60 being exactly 60) is reproduced.
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


# Drawing the people.

_MASK_PALETTE = np.array(
    [
        [0.95, 0.95, 0.95],
        [0.60, 0.78, 0.92],
        [0.12, 0.12, 0.14],
        [0.55, 0.56, 0.58],
        [0.93, 0.70, 0.78],
        [0.18, 0.22, 0.42],
        [0.80, 0.86, 0.70],
        [0.85, 0.80, 0.68],
    ],
    dtype=np.float32,
)
#: A shape: its bounding box (x0, x1, y0, y1) and its soft coverage on coordinate grids.
_Shape = tuple[tuple[float, float, float, float], Callable[[np.ndarray, np.ndarray], np.ndarray]]
_GREY_HAIR = np.array([0.80, 0.80, 0.80], dtype=np.float32)
_MOUTH = np.array([0.62, 0.22, 0.24], dtype=np.float32)
_EYE = np.array([0.08, 0.06, 0.06], dtype=np.float32)


@dataclass(frozen=True)
class Traits:
    """What stays the same across one person's seven pictures."""

    skin: np.ndarray
    background: tuple[np.ndarray, np.ndarray, float]  # two colours and a gradient angle
    clothes: np.ndarray
    hair: np.ndarray  # hair colour, greyed with age
    hair_length: float  # 0 short .. 1 long
    hairline: float
    wrinkles: float  # 0 none .. 1 three dark forehead lines
    scale: float
    masks: np.ndarray  # six mask colours: mask1..mask5, incorrect_mask


def traits(gender: int, age: int, rng: np.random.Generator) -> Traits:
    """Random per-person traits whose hair length follows gender and greyness follows age."""
    grey = float(np.clip((age - 22) / 38 + rng.normal(0, 0.07), 0, 1))
    base = rng.uniform(0.05, 0.3) * np.array([1.0, 0.85, 0.7]) * rng.uniform(0.8, 1.2, 3)
    length = rng.normal(0.85, 0.17) if gender == 1 else rng.normal(0.1, 0.1)
    return Traits(
        skin=(np.array([0.87, 0.70, 0.58]) * rng.uniform(0.75, 1.08, 3)).astype(np.float32),
        background=(rng.uniform(0.2, 1, 3), rng.uniform(0.2, 1, 3), float(rng.uniform(0, np.pi))),
        clothes=rng.uniform(0.05, 0.9, 3).astype(np.float32),
        hair=((1 - grey) * base + grey * _GREY_HAIR).astype(np.float32),
        hair_length=float(np.clip(length, 0, 1)),
        hairline=float(rng.uniform(0.5, 0.68)),
        wrinkles=float(np.clip((age - 25) / 35 + rng.normal(0, 0.08), 0, 1)),
        scale=float(rng.uniform(0.9, 1.1)),
        masks=_MASK_PALETTE[np.r_[rng.permutation(len(_MASK_PALETTE))[:5], rng.integers(8)]],
    )


def _ellipse(cx: float, cy: float, a: float, b: float, edge: float) -> _Shape:
    """A soft-edged (anti-aliased) ellipse and its bounding box."""

    def cover(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        d = np.sqrt(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2)
        return np.clip((1 - d) * (min(a, b) / edge), 0, 1)

    return (cx - a, cx + a, cy - b, cy + b), cover


def _band(v: np.ndarray, lo: float, hi: float, edge: float) -> np.ndarray:
    """Soft coverage of ``lo < v < hi``."""
    return np.clip(np.minimum(v - lo, hi - v) / edge + 0.5, 0, 1)


def _rect(x0: float, x1: float, y0: float, y1: float, edge: float) -> _Shape:
    return (x0, x1, y0, y1), lambda x, y: _band(x, x0, x1, edge) * _band(y, y0, y1, edge)


class _Canvas:
    """An RGB float picture painted shape by shape, each only inside its bounding box."""

    def __init__(self, width: int, height: int, background: np.ndarray) -> None:
        self.pixels = np.ascontiguousarray(background, dtype=np.float32)
        self.height, self.width = height, width
        # Coordinates in units of the picture height, so shapes keep their proportions.
        self.x = np.arange(width, dtype=np.float32) / height
        self.y = np.arange(height, dtype=np.float32) / height

    def paint(self, shape: _Shape, color: np.ndarray, strength: float = 1.0) -> None:
        (x0, x1, y0, y1), cover = shape
        c0, c1 = max(0, int(x0 * self.height) - 2), min(self.width, int(x1 * self.height) + 3)
        r0, r1 = max(0, int(y0 * self.height) - 2), min(self.height, int(y1 * self.height) + 3)
        if c0 >= c1 or r0 >= r1:
            return
        alpha = strength * cover(self.x[None, c0:c1], self.y[r0:r1, None])
        region = self.pixels[r0:r1, c0:c1]
        region += alpha[..., None] * (np.asarray(color, dtype=np.float32) - region)


def _union(first: _Shape, second: _Shape) -> _Shape:
    (a0, a1, a2, a3), f = first
    (b0, b1, b2, b3), g = second
    box = (min(a0, b0), max(a1, b1), min(a2, b2), max(a3, b3))
    return box, lambda x, y: np.maximum(f(x, y), g(x, y))


def _clip_rows(shape: _Shape, top: float, bottom: float, edge: float) -> _Shape:
    (x0, x1, y0, y1), f = shape
    box = (x0, x1, max(y0, top), min(y1, bottom))
    return box, lambda x, y: f(x, y) * _band(y, top, bottom, edge)


def background(t: Traits, size: tuple[int, int]) -> np.ndarray:
    """Person ``t``'s background gradient (float32 (H, W, 3)), the same in all seven pictures."""
    height, width = size
    col_a, col_b, angle = t.background
    ramp = np.arange(width)[None, :] * np.cos(angle) + np.arange(height)[:, None] * np.sin(angle)
    ramp = np.clip(ramp / height, 0, 1.2)[..., None] / 1.2
    return np.ascontiguousarray(col_a * (1 - ramp) + col_b * ramp, dtype=np.float32)


def render(
    t: Traits,
    stem_index: int,
    size: tuple[int, int],
    rng: np.random.Generator,
    back: np.ndarray | None = None,
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """One picture (PIL RGB, ``size`` = (height, width)) of person ``t`` and its face box
    (x0, y0, x1, y1 in pixels: the face oval, forehead to chin); stems 0-4 are mask1..mask5,
    5 incorrect_mask, 6 normal. ``back``: the person's :func:`background` (left unchanged)."""
    height, width = size
    edge = 1.2 / height
    cx = width / height / 2 + rng.normal(0, 0.025)
    cy = 0.46 + rng.normal(0, 0.02)
    a, b = 0.2 * t.scale * rng.uniform(0.96, 1.04), 0.27 * t.scale * rng.uniform(0.96, 1.04)

    back = background(t, size) if back is None else back
    canvas = _Canvas(width, height, back.copy())  # painted in place
    canvas.paint(_ellipse(cx, cy + 0.62, 0.4, 0.27, edge), t.clothes)
    canvas.paint(_rect(cx - 0.1, cx + 0.1, cy, cy + 0.42, edge), t.skin)
    cap = _ellipse(cx, cy - 0.12 * b, 1.16 * a, 1.06 * b, edge)
    bottom = cy + b * (1.65 * t.hair_length - 0.1)
    side = (1.12 + 0.22 * t.hair_length) * a  # long hair is fuller, too
    canvas.paint(_union(cap, _rect(cx - side, cx + side, cy - 0.1 * b, bottom, edge)), t.hair)
    face = _ellipse(cx, cy, a, b, edge)
    canvas.paint(face, t.skin)
    # Darker towards the cheeks, inside the face only, for a little roundness.
    canvas.paint((face[0], lambda x, y: face[1](x, y) * ((x - cx) / a) ** 4), t.skin * 0.75, 0.6)
    canvas.paint(_clip_rows(cap, -1, cy - t.hairline * b, edge), t.hair)
    for k in range(3):  # forehead lines appear one after another as ``wrinkles`` grows
        depth = 0.5 * float(np.clip(3 * t.wrinkles - k, 0, 1))
        top = cy - b * (0.27 + 0.08 * k)
        canvas.paint(
            _rect(cx - 0.55 * a, cx + 0.55 * a, top, top + 0.011, edge), t.skin * 0.45, depth
        )
    for side in (-1, 1):
        eye_x = cx + side * 0.4 * a
        canvas.paint(_ellipse(eye_x, cy - 0.1 * b, 0.1 * a, 0.05 * b, edge), _EYE)
        brow = cy - 0.2 * b
        canvas.paint(_rect(eye_x - 0.14 * a, eye_x + 0.14 * a, brow, brow + 0.012, edge), t.hair)
    canvas.paint(_ellipse(cx, cy + 0.17 * b, 0.1 * a, 0.13 * b, edge), t.skin * 0.72)
    canvas.paint(_ellipse(cx, cy + 0.52 * b, 0.3 * a, 0.065 * b, edge), _MOUTH)
    if stem_index < 6:  # 6 = normal: no mask
        top = cy + (0.0 if stem_index < 5 else 0.36) * b + rng.normal(0, 0.02) * b
        cover = _ellipse(cx, cy + 0.45 * b, 1.06 * a, 0.64 * b, edge)
        canvas.paint(_clip_rows(cover, top, 2, edge), t.masks[stem_index])

    pixels = canvas.pixels * rng.uniform(0.85, 1.15)
    pixels += rng.normal(0, 0.03, pixels.shape).astype(np.float32)
    pixels = (np.clip(pixels, 0, 1) * 255 + 0.5).astype(np.uint8)
    radius = rng.uniform(0, 0.7) * height / 128
    image = Image.fromarray(pixels, "RGB").filter(ImageFilter.GaussianBlur(radius))
    x0, x1, y0, y1 = (max(0, round(v * height)) for v in face[0])
    return image, (x0, y0, min(width, x1), min(height, y1))


_JPEG_QUALITY = 90

#: Columns of a face boxes file (the fixture's true boxes, ``kit.faces``' stored boxes).
FACE_COLUMNS = ("image_id", "x0", "y0", "x1", "y1")


def put(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def put_csv(path: Path, table: pd.DataFrame) -> None:
    put(path, table.to_csv(index=False, lineterminator="\n"))


def _person(job: tuple[Path, str, int, int, int, tuple[int, int], list[tuple[str, str]]]):
    """Render and save one person's seven pictures; their face boxes. ``job``: (folder, "train"
    or "eval", seed, person index, gender*1000+age, size (H, W), (file name, stem) per picture)."""
    folder, part, seed, i, who, size, files = job
    gender, age = divmod(who, 1000)
    side = 0 if part == "train" else 1
    look = traits(gender, age, np.random.default_rng([seed, side, i]))
    back = background(look, size)
    boxes = []
    for k, (name, _stem) in enumerate(files):
        image, box = render(look, k, size, np.random.default_rng([seed, side, i, k + 1]), back)
        buf = io.BytesIO()
        if name.lower().endswith(".png"):
            image.save(buf, format="PNG", compress_level=1)
        else:
            image.save(buf, format="JPEG", quality=_JPEG_QUALITY)
        put(folder / name, buf.getvalue())
        boxes.append(box)
    return boxes


def draw_people(root: Path, part: str, jobs: list, workers: int, progress: bool) -> None:
    """Draw every job's pictures (in ``workers`` processes when more than one); write
    ``root/part/faces.csv`` (each face's true box) and a ``.DS_Store`` to skip."""
    desc = f"fixture: {'training' if part == 'train' else part} people"
    bar = Progress(desc, len(jobs), quiet=not progress, what="people", first_after=5)
    with bar, pool_map(workers if workers > 1 else 0, chunksize=4) as imap:
        drawn = []
        for person in imap(_person, jobs):
            drawn.append(person)
            bar.step(len(person))
    boxes = [
        ((job[0] / name).relative_to(root).as_posix(), *box)
        for job, person in zip(jobs, drawn, strict=True)
        for (name, _), box in zip(job[6], person, strict=True)
    ]
    put(root / part / "images" / ".DS_Store", b"")
    put_csv(root / part / "faces.csv", pd.DataFrame(boxes, columns=list(FACE_COLUMNS)))


# Writing the data folder.


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

    ``image_size`` is (height, width) (the real pictures are (512, 384)); ``workers`` processes
    draw the people (default: per core, one for small fixtures). ``n_eval_people`` defaults to
    a third of ``n_people`` (0: no eval folder). ``eval/answers.csv`` holds the true classes.
    Same arguments (whatever ``workers``), same bytes. An existing ``train/`` or ``eval/``
    under ``root`` is an error unless ``overwrite``.
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
        workers = min(usable_cores(), max(1, (n_people + n_eval) // 24))
    for part in ("train", "eval"):
        if (root / part).exists() and not overwrite:
            raise FileExistsError(
                f"{root / part} already exists; pass overwrite=True (--overwrite) to replace it"
            )
    # Written into a hidden staging folder renamed into place at the end: the dataset appears
    # whole or not at all, without kit.io's fsync per file (minutes for a full-size build).
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
    """Command line; the exit code (2 with one ``error:`` line on bad input)."""
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
