"""Face boxes computed once per data folder, stored beside the image cache, and reused; the
picture loader built with them (:func:`prepared_loader`, :func:`other_crop`).

``<cache folder>/faces-<detector>-<key>.csv`` holds one row per picture of the data folder in
the boxes-file format (empty where no face was found; a ``score`` column where the detector
gives a confidence), so it can be corrected and passed back as ``--face-boxes``. The key is
every picture's path, size and mtime, the detector's name and version, and the files it reads.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from functools import partial
from io import StringIO
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from kit import io
from kit.config import Config
from kit.data import read_eval, read_train
from kit.data._common import pool_map
from kit.data.fixture import FACE_COLUMNS
from kit.data.image_cache import cache_dir_for, files_key
from kit.data.pictures import FaceBoxes, PreparedLoader
from kit.errors import UserCodeError
from kit.faces.detectors import FACE_DETECTORS, Face, Finder, image_id, read_boxes
from kit.transforms import CROP_MODES, Box

__all__ = ["boxes_path", "face_boxes", "folder_pictures", "other_crop", "prepared_loader"]

_log = logging.getLogger("kit")
_CHUNK = 64  # pictures per task of the detection pool
SCORE = "score"  # the stored file's column of the detector's confidence


def folder_pictures(data_dir: str | os.PathLike[str], strict: bool = True) -> list[str]:
    """Every training and eval picture of the data folder, sorted."""
    frames = [read_train(data_dir, strict=strict)]
    if (Path(data_dir) / "eval" / "info.csv").is_file():
        frames.append(read_eval(data_dir, strict=strict))
    return sorted({str(p) for df in frames for p in df["path"]})


def boxes_path(cfg: Config, data_dir: str | os.PathLike[str], paths: Sequence[str]) -> Path:
    """Where the boxes of ``paths`` found by ``cfg.face_detector`` are (or will be) stored."""
    root = Path(data_dir)
    detector = FACE_DETECTORS.get(cfg.face_detector)
    inputs = [str(p) for p in detector.inputs(cfg, root) if p.is_file()]
    spec = {"detector": cfg.face_detector, "version": detector.version, "inputs": inputs}
    key = files_key([*paths, *inputs], spec)
    return cache_dir_for(cfg.cache_dir, root) / f"faces-{cfg.face_detector}-{key}.csv"


def _detect(
    name: str, cfg: Config, root: Path, paths: list[str], find: Finder | None = None
) -> list[Box | Face | None]:
    """One task: search ``paths`` with ``find``, or the detector opened once per task."""
    find = find or _open(name, cfg, root)
    out: list[Box | Face | None] = []
    for path in paths:
        try:
            with FACE_DETECTORS.calling(name, on=path, passing=(OSError,)):
                out.append(find(path))
        except OSError:  # an unreadable picture has no face; training reports the file
            out.append(None)
        except UserCodeError as err:
            raise UserCodeError(f"{err}; {_DETECTOR_CONTRACT}") from err.__cause__
    return out


#: What a registered detector must do, said when one fails (a wrong return type included).
_DETECTOR_CONTRACT = (
    "a face detector takes the picture (uint8 RGB array) and returns (x0, y0, x1, y1) in "
    "pixels, or None when it finds no face"
)


def _open(name: str, cfg: Config, root: Path) -> Finder:
    with FACE_DETECTORS.calling(name, on=f"start (data folder {root})"):
        return FACE_DETECTORS.get(name).open(cfg, root)


def _compute(cfg: Config, root: Path, paths: list[str], workers: int, progress: bool):
    name = cfg.face_detector
    find = _open(name, cfg, root)  # here first: one that cannot start fails at once
    chunks = [paths[i : i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    desc = f"face boxes ({name})"
    bar = tqdm(total=len(paths), desc=desc, unit="img", disable=not progress, leave=False)
    found: list[Box | Face | None] = []
    parallel = FACE_DETECTORS.get(name).parallel and workers > 1 and len(chunks) > 1
    # each worker process opens its own detector; this process uses the one opened above
    task = partial(_detect, name, cfg, root, find=None if parallel else find)
    with bar, pool_map(min(workers, len(chunks)) if parallel else 0) as imap:
        for chunk, boxes in zip(chunks, imap(task, chunks), strict=True):
            found.extend(boxes)
            bar.update(len(chunk))
    return found


def _write(path: Path, root: Path, boxes: dict[str, Box | None], scores: dict[str, float]) -> None:
    rows = [(image_id(p, root), *(b if b is not None else ("",) * 4)) for p, b in boxes.items()]
    table = pd.DataFrame(rows, columns=list(FACE_COLUMNS))
    if scores:
        table[SCORE] = [scores.get(p) for p in boxes]
    io.write_text(path, table.to_csv(index=False, lineterminator="\n"))


def _read_scores(path: Path) -> dict[str, float]:
    text, sep = io.read_csv_text(path)
    decimal = io.decimal_mark(text, sep)
    rows = csv.DictReader(StringIO(text, newline=""), delimiter=sep)
    return {row["image_id"]: io.csv_number(row[SCORE], decimal) for row in rows if row.get(SCORE)}


def face_boxes(
    cfg: Config,
    data_dir: str | os.PathLike[str],
    paths: Sequence[str] | None = None,
    workers: int = 1,
    progress: bool = True,
) -> FaceBoxes:
    """The face boxes by ``cfg.face_detector`` of every picture of ``data_dir`` (or ``paths``):
    stored ones when the key matches, else detected (``workers`` processes) and stored."""
    root = Path(data_dir)
    names = sorted(set(paths)) if paths is not None else folder_pictures(root, cfg.strict_data)
    file = boxes_path(cfg, root, names)
    if file.is_file():
        stored, stored_scores = read_boxes(file), _read_scores(file)
        boxes = {p: stored.get(image_id(p, root)) for p in names}
        scores = {p: stored_scores[i] for p in names if (i := image_id(p, root)) in stored_scores}
    else:
        found = dict(zip(names, _compute(cfg, root, names, workers, progress), strict=True))
        boxes = {p: f.box if isinstance(f, Face) else f for p, f in found.items()}
        scores = {p: f.score for p, f in found.items() if isinstance(f, Face)}
        _write(file, root, boxes, scores)
    result = FaceBoxes(boxes, file, cfg.face_detector, scores)
    _log.info("%s", result.summary())
    return result


def prepared_loader(
    cfg: Config,
    data_dir: str | os.PathLike[str],
    paths: Sequence[str] = (),
    workers: int = 1,
    progress: bool = True,
) -> PreparedLoader:
    """The loader that prepares pictures as ``cfg`` says: for a face crop, with the boxes of the
    whole data folder plus those of any of ``paths`` outside it."""
    if not CROP_MODES.get(cfg.crop_mode).needs_boxes:
        return PreparedLoader(cfg)
    boxes = face_boxes(cfg, data_dir, workers=workers, progress=progress)
    extra = sorted({os.fspath(p) for p in paths} - set(boxes.boxes))
    if extra:
        more = face_boxes(cfg, Path(data_dir), extra, workers=workers, progress=progress)
        merged = {**boxes.boxes, **more.boxes}
        boxes = FaceBoxes(merged, boxes.file, boxes.detector, {**boxes.scores, **more.scores})
    return PreparedLoader(cfg, boxes)


def other_crop(
    cfg: Config,
    mode: str,
    data_dir: str | os.PathLike[str],
    paths: Sequence[str] = (),
    workers: int = 1,
    progress: bool = True,
    boxes: FaceBoxes | None = None,
) -> tuple[PreparedLoader, frozenset[str]]:
    """The loader under crop ``mode`` instead of ``cfg.crop_mode`` (TTA ``center_face``,
    ``--crop-mix``) and the ``paths`` it applies to: where either crop needs face boxes, those
    with one (without, the face crop would be a centre crop again); else all. ``boxes``: a
    face-crop run's own, reused instead of read again."""
    other = cfg.replace(crop_mode=mode)
    names = {os.fspath(p) for p in paths}
    with_boxes = [c for c in (other, cfg) if CROP_MODES.get(c.crop_mode).needs_boxes]
    if not with_boxes:
        return PreparedLoader(other), frozenset(names)
    if boxes is None:
        boxes = prepared_loader(with_boxes[0], data_dir, paths, workers, progress).faces
    assert boxes is not None  # a crop that needs boxes always has them
    found = frozenset(p for p in names if boxes.boxes.get(p) is not None)
    return PreparedLoader(other, boxes), found
