"""Face boxes computed once per data folder, stored beside the image cache, and reused.

``<cache folder>/faces-<key>.csv`` holds one row per picture of the data folder (training and
eval pictures), in the boxes-file format (``image_id,x0,y0,x1,y1``, empty where no face was
found), so it can be inspected, corrected and passed back as ``--face-boxes``; a detector that
gives a confidence (``mtcnn``) adds a ``score`` column. The key is
built like the image cache's: every picture's path, size and mtime, the detector's name and
version, and the files it reads (a boxes CSV).
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from kit import io
from kit.crops import CROP_MODES, Box
from kit.data import read_eval, read_train
from kit.data.cache import cache_dir_for, files_key
from kit.data.dataset import load_rgb
from kit.data.fixture import FACE_COLUMNS
from kit.errors import UserCodeError
from kit.faces.detectors import FACE_DETECTORS, Face, Finder, image_id, read_boxes
from kit.transforms import prepare

__all__ = ["FaceBoxes", "PreparedLoader", "boxes_path", "face_boxes", "folder_pictures"]

_log = logging.getLogger("kit")
_CHUNK = 64  # pictures per task of the detection pool
SCORE = "score"  # the stored file's column of the detector's confidence


@dataclass(frozen=True)
class FaceBoxes:
    """``path -> box`` (None: no face, the crop falls back to the centre) and where stored;
    ``scores``: ``path -> confidence`` of the faces found, where the detector gives one."""

    boxes: dict[str, Box | None]
    file: Path
    detector: str
    scores: dict[str, float] = field(default_factory=dict)

    @property
    def found(self) -> int:
        """Pictures with a face box."""
        return sum(b is not None for b in self.boxes.values())

    @property
    def fallback(self) -> int:
        """Pictures without one (centre-cropped)."""
        return len(self.boxes) - self.found

    @property
    def min_score(self) -> float | None:
        """The lowest confidence of a face kept (None: the detector gives none)."""
        return min(self.scores.values()) if self.scores else None

    def summary(self) -> str:
        """``face boxes (detector x): N found, M centre-crop fallback (P%) -> file``."""
        share = self.fallback / max(1, len(self.boxes))
        lowest = "" if self.min_score is None else f" (lowest confidence {self.min_score:.2f})"
        return (
            f"face boxes ({self.detector}): {self.found} found{lowest}, {self.fallback} "
            f"centre-crop fallback ({share:.0%}) of {len(self.boxes)} pictures; stored in "
            f"{self.file}"
        )

    def record(self) -> dict[str, Any]:
        """What the run folder keeps of them (env.json)."""
        return {
            "detector": self.detector,
            "found": self.found,
            "fallback": self.fallback,
            "min_score": self.min_score,
            "file": str(self.file),
        }


def folder_pictures(data_dir: str | os.PathLike[str], strict: bool = True) -> list[str]:
    """Every training and eval picture of the data folder, sorted (the boxes' key)."""
    frames = [read_train(data_dir, strict=strict)]
    if (Path(data_dir) / "eval" / "info.csv").is_file():
        frames.append(read_eval(data_dir, strict=strict))
    return sorted({str(p) for df in frames for p in df["path"]})


def boxes_path(cfg: Any, data_dir: str | os.PathLike[str], paths: Sequence[str]) -> Path:
    """Where the boxes of ``paths`` found by ``cfg.face_detector`` are (or will be) stored."""
    root = Path(data_dir)
    detector = FACE_DETECTORS.get(cfg.face_detector)
    inputs = [str(p) for p in detector.inputs(cfg, root) if p.is_file()]
    spec = {"detector": cfg.face_detector, "version": detector.version, "inputs": inputs}
    key = files_key([*paths, *inputs], spec)
    return cache_dir_for(cfg, root) / f"faces-{cfg.face_detector}-{key}.csv"


def _detect(
    name: str, cfg: Any, root: Path, paths: list[str], find: Finder | None = None
) -> list[Box | Face | None]:
    """One task: open the detector (once per task) unless given, and search ``paths``."""
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


def _open(name: str, cfg: Any, root: Path) -> Finder:
    """The detector ``name`` started (its model loaded): a user's that fails is named."""
    with FACE_DETECTORS.calling(name, on=f"start (data folder {root})"):
        return FACE_DETECTORS.get(name).open(cfg, root)


def _compute(cfg: Any, root: Path, paths: list[str], workers: int, progress: bool):
    detector = FACE_DETECTORS.get(cfg.face_detector)
    find = _open(cfg.face_detector, cfg, root)  # here first: one that cannot start fails at once
    chunks = [paths[i : i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    bar = tqdm(
        total=len(paths),
        desc=f"face boxes ({cfg.face_detector})",
        unit="img",
        disable=not progress,
        leave=False,
    )
    found: list[Box | Face | None] = []
    if detector.parallel and workers > 1 and len(chunks) > 1:
        with ProcessPoolExecutor(min(workers, len(chunks))) as pool:
            tasks = [pool.submit(_detect, cfg.face_detector, cfg, root, c) for c in chunks]
            for task, chunk in zip(tasks, chunks, strict=True):
                found.extend(task.result())
                bar.update(len(chunk))
    else:
        for chunk in chunks:
            found.extend(_detect(cfg.face_detector, cfg, root, chunk, find))
            bar.update(len(chunk))
    bar.close()
    return found


def _split(found: list[Box | Face | None], paths: list[str]):
    """The boxes and, of the faces found with a confidence, their scores."""
    boxes = {p: f.box if isinstance(f, Face) else f for p, f in zip(paths, found, strict=True)}
    scores = {p: f.score for p, f in zip(paths, found, strict=True) if isinstance(f, Face)}
    return boxes, scores


def _write(path: Path, root: Path, boxes: dict[str, Box | None], scores: dict[str, float]) -> None:
    rows = [(image_id(p, root), *(b if b is not None else ("",) * 4)) for p, b in boxes.items()]
    table = pd.DataFrame(rows, columns=list(FACE_COLUMNS))
    if scores:
        table[SCORE] = [scores.get(p) for p in boxes]
    io.write_text(path, table.to_csv(index=False, lineterminator="\n"))


def _read_scores(path: Path) -> dict[str, float]:
    """``image_id -> score`` of a stored file's faces (none without a score column)."""
    text, sep = io.read_csv_text(path)
    decimal = io.decimal_mark(text, sep)
    rows = csv.DictReader(StringIO(text, newline=""), delimiter=sep)
    return {row["image_id"]: io.csv_number(row[SCORE], decimal) for row in rows if row.get(SCORE)}


def face_boxes(
    cfg: Any,
    data_dir: str | os.PathLike[str],
    paths: Sequence[str] | None = None,
    workers: int = 1,
    progress: bool = True,
) -> FaceBoxes:
    """The face boxes of every picture of ``data_dir`` (or of ``paths``) found by
    ``cfg.face_detector``: read from the stored file when its key matches, else detected
    (``workers`` processes for the bundled detectors) and stored atomically."""
    root = Path(data_dir)
    names = sorted(set(paths)) if paths is not None else folder_pictures(root, cfg.strict_data)
    file = boxes_path(cfg, root, names)
    if file.is_file():
        stored, stored_scores = read_boxes(file), _read_scores(file)
        boxes = {p: stored.get(image_id(p, root)) for p in names}
        scores = {p: stored_scores[i] for p in names if (i := image_id(p, root)) in stored_scores}
    else:
        boxes, scores = _split(_compute(cfg, root, names, workers, progress), names)
        _write(file, root, boxes, scores)
    result = FaceBoxes(boxes, file, cfg.face_detector, scores)
    _log.info("%s", result.summary())
    return result


class PreparedLoader:
    """``loader(path)``: the picture decoded and prepared (crop of ``cfg.crop_mode`` around its
    face box, resize) by :func:`kit.transforms.prepare`; pairs with ``prepared=True``.
    Picklable, so DataLoader workers and the cache build can use it."""

    def __init__(self, cfg: Any, boxes: FaceBoxes | None = None) -> None:
        if boxes is None and CROP_MODES.get(cfg.crop_mode).needs_boxes:
            raise ValueError(f"crop_mode {cfg.crop_mode!r} needs face boxes (kit.faces.face_boxes)")
        self.cfg = cfg
        self.faces = boxes
        self.boxes = {} if boxes is None else boxes.boxes

    @property
    def summary(self) -> str:
        """The found / fallback counts of the face boxes (or that none are used)."""
        return "no face boxes (centre crop)" if self.faces is None else self.faces.summary()

    def box(self, path: str) -> Box | None:
        """The face box of ``path`` (None: none found, or not needed)."""
        return self.boxes.get(os.fspath(path))

    def __call__(self, path: str) -> np.ndarray:
        return prepare(load_rgb(path), self.cfg, self.box(path))
