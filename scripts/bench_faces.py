"""How well each face detector finds faces, side by side: the fixture and real photographs.

    python scripts/bench_faces.py                        # every detector, 30 people at 512x384
    python scripts/bench_faces.py --detectors mtcnn skimage --people 6 --lfw-step 10

On the synthetic fixture at the real picture size (``--people``, ``--fixture-size``), against
the true boxes the fixture writes: pictures with a face box (found), boxes with IoU >= 0.5 with
the true one (right), found by mask state (training pictures), CPU seconds per picture (this
process, one process, so other work on a shared machine counts less). On the photographs
of :func:`kit.faces.detectors.photos` (scikit-image's, hand-checked face regions): faces right,
pictures without a face where one was found (false), CPU seconds per picture. This is what
the measured table of docs/faces.md is made with. ``mtcnn-central`` is ``mtcnn`` keeping the
face nearest the picture's centre instead of the largest.
"""

from __future__ import annotations

import argparse
import functools
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from kit.config import Config
from kit.data import read_eval, read_train
from kit.data.fixture import make_fixture
from kit.faces import FACE_DETECTORS, FaceDetector, face_boxes, image_id, read_boxes
from kit.faces.detectors import _open_mtcnn, iou, write_photos

MASK_STATES = {"mask": "mask on", "incorrect": "under nose", "normal": "no mask"}


def _central_face(found, shape):
    h, w = shape[:2]

    def distance(f):
        x, y, bw, bh = f["box"]
        return (x + bw / 2 - w / 2) ** 2 + (y + bh / 2 - h / 2) ** 2

    return min(found, key=distance)


def _detect(name: str, data: Path, paths: list[str], cache: Path):
    cfg = Config(data_dir=str(data), cache_dir=str(cache), crop_mode="face", face_detector=name)
    start = time.process_time()
    found = face_boxes(cfg, data, paths, workers=1, progress=False)
    return found, (time.process_time() - start) / len(paths)


def _fixture_row(name: str, data: Path, cache: Path) -> str:
    train, ev = read_train(data), read_eval(data)
    paths = sorted([*map(str, train.path), *map(str, ev.path)])
    truth = {**read_boxes(data / "train/faces.csv"), **read_boxes(data / "eval/faces.csv")}
    found, seconds = _detect(name, data, paths, cache)
    right = {
        p
        for p, b in found.boxes.items()
        if b is not None and iou(b, truth[image_id(p, data)]) >= 0.5
    }
    states = []
    for key in MASK_STATES:
        group = [str(p) for p in train.path if Path(p).stem.startswith(key)]
        states.append(f"{sum(found.boxes[p] is not None for p in group)} / {len(group)}")
    n = len(paths)
    return (
        f"| `{name}` | {found.found} / {n} ({found.found / n:.0%}) | {len(right)} "
        f"({len(right) / n:.0%}) | {' | '.join(states)} | {seconds * 1000:.0f} ms |"
    )


def _photo_row(name: str, folder: Path, cache: Path, lfw_step: int) -> str:
    shots = write_photos(folder, lfw_step)
    found, seconds = _detect(name, folder, list(shots), cache)
    faces = [p for p, s in shots.items() if s.face is not None]
    right = [p for p in faces if found.boxes[p] and iou(found.boxes[p], shots[p].face) >= 0.5]
    empty = [p for p, s in shots.items() if s.face is None]
    false = [p for p in empty if found.boxes[p] is not None]
    whole = [Path(p).stem for p in right if not Path(p).stem.startswith("lfw")]
    return (
        f"| `{name}` | {len(right)} / {len(faces)} ({', '.join(whole) or 'none'} of the "
        f"whole photos) | {len(false)} / {len(empty)} | {seconds * 1000:.0f} ms |"
    )


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--detectors", nargs="+", default=None, help="default: all but boxes")
    p.add_argument("--people", type=int, default=30)
    p.add_argument("--fixture-size", type=int, nargs=2, default=(512, 384), metavar=("H", "W"))
    p.add_argument("--lfw-step", type=int, default=1, help="every N-th LFW picture")
    p.add_argument("--data", default=None, help="an existing fixture folder to measure on")
    args = p.parse_args(argv)
    FACE_DETECTORS.register(
        "mtcnn-central",
        FaceDetector(functools.partial(_open_mtcnn, pick=_central_face), version="1"),
    )
    names = args.detectors or [n for n in FACE_DETECTORS.names() if n != "boxes"]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = Path(args.data) if args.data else work / "fixture"
        if not args.data:
            make_fixture(data, n_people=args.people, image_size=tuple(args.fixture_size), seed=0)
        fixture_rows, photo_rows = [], []
        for name in names:
            try:
                fixture_rows.append(_fixture_row(name, data, work / f"cache-{name}"))
                photo_rows.append(
                    _photo_row(name, work / "photos", work / f"pc-{name}", args.lfw_step)
                )
            except ValueError as err:  # a detector this machine cannot run says why
                print(f"{name}: not measured: {err}")
    print(
        f"fixture {data.name}: {args.people} people at {args.fixture_size}, cpus {os.cpu_count()}"
    )
    print(
        "| detector | found | right (IoU >= 0.5) | mask on | under nose | no mask "
        "| CPU time per picture |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(fixture_rows))
    print("\n| detector | faces right | false faces | CPU time per picture |")
    print("| --- | --- | --- | --- |")
    print("\n".join(photo_rows))


if __name__ == "__main__":
    main()
