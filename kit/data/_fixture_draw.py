"""Drawing the fixture's people, in several processes when there are many, and writing their
picture files (for :mod:`kit.data.fixture`). Every picture has its own seeded generator, so
people can be drawn in any order, in any process, with the same bytes."""

from __future__ import annotations

import contextlib
import io
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from kit.data._faces import background, render, traits
from kit.progress import Progress

__all__ = ["FACE_COLUMNS", "cores", "draw", "draw_people", "put", "put_csv", "save"]

_JPEG_QUALITY = 90

#: Columns of a face boxes file (the fixture's true boxes, ``kit.faces``' stored boxes).
FACE_COLUMNS = ("image_id", "x0", "y0", "x1", "y1")


def save(path: Path, image, ext: str) -> None:
    buf = io.BytesIO()
    if ext.lower() == "png":
        image.save(buf, format="PNG", compress_level=1)
    else:
        image.save(buf, format="JPEG", quality=_JPEG_QUALITY)
    put(path, buf.getvalue())


def put(path: Path, data: bytes | str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)


def put_csv(path: Path, table: pd.DataFrame) -> None:
    put(path, table.to_csv(index=False, lineterminator="\n"))


def _person(job: tuple[Path, str, int, int, int, tuple[int, int], list[tuple[str, str]]]):
    """Render and save one person's seven pictures; their face boxes (one process's work).

    ``job``: (folder, "train" or "eval", seed, person index, gender*1000+age, size (H, W),
    (file name, stem) per picture).
    """
    folder, part, seed, i, who, size, files = job
    gender, age = divmod(who, 1000)
    side = 0 if part == "train" else 1
    look = traits(gender, age, np.random.default_rng([seed, side, i]))
    back = background(look, size)
    boxes = []
    for k, (name, _stem) in enumerate(files):
        image, box = render(look, k, size, np.random.default_rng([seed, side, i, k + 1]), back)
        save(folder / name, image, Path(name).suffix[1:])
        boxes.append(box)
    return boxes


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def draw(jobs: list, workers: int, desc: str, progress: bool) -> list[list]:
    """Every job's boxes, in job order; in ``workers`` processes when more than one."""
    bar = Progress(desc, len(jobs), quiet=not progress, what="people", first_after=5)
    with bar, contextlib.ExitStack() as stack:
        if workers > 1:
            pool = stack.enter_context(ProcessPoolExecutor(workers))
            results = pool.map(_person, jobs, chunksize=4)
        else:
            results = map(_person, jobs)
        out = []
        for boxes in results:
            out.append(boxes)
            bar.step(len(boxes))
    return out


def draw_people(root: Path, part: str, jobs: list, workers: int, progress: bool) -> None:
    """Draw every job's pictures under ``root/part/images``; write ``root/part/faces.csv`` (each
    face's true box by the picture's path relative to ``root``) and a ``.DS_Store`` to skip."""
    desc = f"fixture: {'training' if part == 'train' else part} people"
    drawn = draw(jobs, workers, desc, progress)
    boxes = [
        ((job[0] / name).relative_to(root).as_posix(), *box)
        for job, person in zip(jobs, drawn, strict=True)
        for (name, _), box in zip(job[6], person, strict=True)
    ]
    put(root / part / "images" / ".DS_Store", b"")
    put_csv(root / part / "faces.csv", pd.DataFrame(boxes, columns=list(FACE_COLUMNS)))
