"""Face crop: the fixture's true boxes, crops exactly there, detectors, stored boxes, the CLI."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import albumentations as A
import numpy as np
import pandas as pd
import pytest

from kit.config import Config
from kit.data import read_eval, read_train
from kit.data.dataset import load_rgb
from kit.data.fixture import make_fixture
from kit.faces import (
    FACE_DETECTORS,
    boxes_path,
    face_boxes,
    prepared_loader,
    read_boxes,
    register_face_detector,
)
from kit.faces.__main__ import main as faces_main
from kit.transforms import build_transforms, crop_rect, prepare
from tests._triggers import assert_documented


@pytest.fixture(scope="module")
def faces_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small fixture at a quarter of the real picture size (faces big enough to detect)."""
    root = tmp_path_factory.mktemp("faces") / "data"
    return make_fixture(root, n_people=6, image_size=(128, 96), seed=1, n_eval_people=2)


def _cfg(data: Path, tmp: Path, **changes) -> Config:
    base = Config(
        data_dir=str(data),
        cache_dir=str(tmp / "cache"),
        crop_mode="face",
        face_detector="boxes",
        image_size=(64, 48),
    )
    return base.replace(**changes)


def _truth(data: Path) -> dict:
    return {**read_boxes(data / "train/faces.csv"), **read_boxes(data / "eval/faces.csv")}


def _iou(a, b) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return w * h / (area(a) + area(b) - w * h)


def _rect(shape, cfg: Config, box=None):
    """The crop ``cfg``'s run takes of a picture of ``shape`` with face ``box``."""
    return crop_rect(
        shape,
        box,
        crop_mode=cfg.crop_mode,
        crop=cfg.crop,
        image_size=cfg.image_size,
        face_margin=cfg.face_margin,
    )


def test_the_fixture_writes_the_true_face_box_of_every_picture(faces_data):
    train, ev = read_train(faces_data), read_eval(faces_data)
    boxes = {
        **read_boxes(faces_data / "train/faces.csv"),
        **read_boxes(faces_data / "eval/faces.csv"),
    }
    ids = {Path(os.path.relpath(p, faces_data)).as_posix() for p in [*train.path, *ev.path]}
    assert set(boxes) == ids
    for image_id, (x0, y0, x1, y1) in list(boxes.items())[:20]:
        image = load_rgb(str(faces_data / image_id))
        h, w = image.shape[:2]
        assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        # the face oval is centred in its box: the centre is skin or mask, never background
        corner, centre = image[0, 0].astype(int), image[(y0 + y1) // 2, (x0 + x1) // 2].astype(int)
        assert np.abs(corner - centre).sum() > 30, image_id


def test_face_crop_with_the_boxes_file_crops_exactly_there(faces_data, tmp_path):
    boxes = read_boxes(faces_data / "train/faces.csv")
    image_id, box = next(iter(boxes.items()))
    x0, y0, x1, y1 = box
    # no margin and an input of the box's own shape: the crop is the box itself
    cfg = _cfg(faces_data, tmp_path, face_margin=0.0, image_size=(y1 - y0, x1 - x0))
    path = str(faces_data / image_id)
    image = load_rgb(path)
    assert _rect(image.shape, cfg, box) == box
    loader = prepared_loader(cfg, faces_data, progress=False)
    assert loader.box(path) == box
    assert np.array_equal(loader(path), image[y0:y1, x0:x1])
    # with a margin the crop grows around the same centre, to the input's aspect ratio
    wide = cfg.replace(face_margin=0.25, image_size=(64, 64))
    r = _rect(image.shape, wide, box)
    assert r[0] <= x0 and r[1] <= y0 and r[2] >= x1 and r[3] >= y1
    assert abs((r[2] - r[0]) - (r[3] - r[1])) <= 1 or 0 in r[:2] or r[2] == image.shape[1]


def test_no_face_falls_back_to_the_centre_crop_and_is_counted(faces_data, tmp_path):
    rows = pd.read_csv(faces_data / "train/faces.csv")
    partial = tmp_path / "some.csv"
    rows.iloc[1:].to_csv(partial, index=False)  # the first picture has no box
    cfg = _cfg(faces_data, tmp_path, face_boxes=str(partial))
    loader = prepared_loader(cfg, faces_data, progress=False)
    total = len(read_train(faces_data)) + len(read_eval(faces_data))
    assert (loader.faces.found, loader.faces.fallback) == (len(rows) - 1, total - len(rows) + 1)
    assert "centre-crop fallback" in loader.summary
    first = str(faces_data / rows.image_id[0])
    assert loader.box(first) is None
    image = load_rgb(first)
    # the centre crop, trimmed to the input's aspect ratio (no stretched fallback pictures)
    c0, r0, c1, r1 = _rect(image.shape, cfg.replace(crop_mode="center"))
    x0, y0, x1, y1 = _rect(image.shape, cfg)
    assert c0 <= x0 and r0 <= y0 and x1 <= c1 and y1 <= r1
    assert abs((x0 + x1) - (c0 + c1)) <= 1 and abs((y0 + y1) - (r0 + r1)) <= 1
    assert abs((y1 - y0) / (x1 - x0) - 64 / 48) < 0.03
    assert np.array_equal(loader(first), prepare(image, cfg, None))


def test_boxes_are_stored_once_and_reused_until_the_pictures_or_detector_change(
    faces_data, tmp_path
):
    data = tmp_path / "data"
    shutil.copytree(faces_data, data)
    calls = []

    @register_face_detector("counting_test", version="1")
    def counting(image: np.ndarray):
        calls.append(1)
        return (1, 2, image.shape[1] - 1, image.shape[0] - 2)

    try:
        cfg = _cfg(data, tmp_path, face_detector="counting_test")
        first = face_boxes(cfg, data, progress=False)
        n = len(first.boxes)
        assert len(calls) == n and first.file.is_file() and first.found == n
        again = face_boxes(cfg, data, progress=False)
        assert len(calls) == n and again.boxes == first.boxes  # read back, not detected
        picture = Path(next(iter(first.boxes)))
        os.utime(picture, ns=(1, 1))  # a changed picture: new key, detected again
        assert boxes_path(cfg, data, list(first.boxes)) != first.file
        changed = face_boxes(cfg, data, progress=False)
        assert len(calls) == 2 * n
        FACE_DETECTORS.unregister("counting_test")
        register_face_detector("counting_test", version="2")(counting)  # a new detector version
        assert boxes_path(cfg, data, list(first.boxes)) != changed.file
    finally:
        FACE_DETECTORS.unregister("counting_test")


def test_a_user_detector_and_unknown_names(faces_data, tmp_path):
    with pytest.raises(ValueError, match="did you mean 'boxes'"):
        Config(crop_mode="face", face_detector="boxs").validate()

    @register_face_detector("half_test")
    def half(image: np.ndarray):
        h, w = image.shape[:2]
        return (0, 0, w // 2, h // 2)

    try:
        cfg = _cfg(
            faces_data, tmp_path, face_detector="half_test", face_margin=0.0, image_size=(64, 48)
        )
        loader = prepared_loader(cfg, faces_data, progress=False)
        assert loader.faces.fallback == 0 and loader.box(next(iter(loader.boxes))) == (0, 0, 48, 64)
    finally:
        FACE_DETECTORS.unregister("half_test")


def test_face_crop_needs_a_prepared_loader():
    with pytest.raises(ValueError, match="needs each picture's face box") as err:
        build_transforms(Config(crop_mode="face"))
    assert_documented("crop-mode-needs-boxes", str(err.value))
    _, eval_tf = build_transforms(Config(crop_mode="face"), prepared=True)
    assert isinstance(eval_tf, A.Compose)


def test_the_bundled_detector_finds_fixture_faces(faces_data, tmp_path):
    cfg = _cfg(faces_data, tmp_path, face_detector="skimage")
    found = face_boxes(cfg, faces_data, workers=1, progress=False)
    truth = {
        **read_boxes(faces_data / "train/faces.csv"),
        **read_boxes(faces_data / "eval/faces.csv"),
    }
    root = faces_data
    hits = [
        _iou(b, truth[Path(os.path.relpath(p, root)).as_posix()]) >= 0.5
        for p, b in found.boxes.items()
        if b is not None
    ]
    # measured on this fixture: about half the faces found, nearly all of them right
    assert found.found >= 0.25 * len(found.boxes), found.summary()
    assert sum(hits) >= 0.8 * len(hits)


def test_opencv_detector_uses_the_bundled_cascade_or_says_why_it_cannot(faces_data, tmp_path):
    import cv2

    cfg = _cfg(faces_data, tmp_path, face_detector="opencv")
    if hasattr(cv2, "CascadeClassifier") and hasattr(cv2, "data"):
        assert face_boxes(cfg, faces_data, progress=False).found > 0
    else:
        with pytest.raises(ValueError, match="--face-detector skimage"):
            face_boxes(cfg, faces_data, progress=False)


def test_opencv_without_its_haar_cascades_is_refused_pointing_to_skimage(tmp_path, monkeypatch):
    import cv2

    monkeypatch.setattr(cv2.data, "haarcascades", str(tmp_path))  # no cascade file there
    with pytest.raises(ValueError, match="--face-detector skimage") as err:
        FACE_DETECTORS.get("opencv").open(Config(), tmp_path)
    assert_documented("face-detector-no-cascade", str(err.value))


def test_a_bad_boxes_file_is_named_with_its_line(tmp_path):
    bad = tmp_path / "b.csv"
    bad.write_text("image_id,x0,y0,x1,y1\na.jpg,1,2,3,4\nb.jpg,1,x,3,4\n")
    with pytest.raises(ValueError, match=r"b.csv, line 3, field y0: found 'x'") as err:
        read_boxes(bad)
    assert_documented("face-boxes-bad-row", str(err.value))
    bad.write_text("image_id,x,y\n")
    with pytest.raises(ValueError, match="lacks columns") as err:
        read_boxes(bad)
    assert_documented("face-boxes-columns", str(err.value))
    with pytest.raises(FileNotFoundError, match="face boxes file") as err:
        read_boxes(tmp_path / "none.csv")
    assert_documented("face-boxes-missing", str(err.value))


def test_cli_precomputes_prints_counts_and_draws_the_preview(faces_data, tmp_path, capsys):
    png = tmp_path / "grid.png"
    args = [str(faces_data), "--detector", "boxes", "--cache-dir", str(tmp_path / "c")]
    assert faces_main([*args, "--preview", str(png), "--samples", "3"]) == 0
    out = capsys.readouterr().out
    assert "found, 0 centre-crop fallback" in out and f"preview: {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert faces_main([str(faces_data), "--detector", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: ")


@pytest.mark.slow
def test_training_and_inference_crop_the_same_way(tiny_cfg, tiny_data):
    """A face-crop run trains from the cache; predicting from its folder without the cache
    (every file decoded and cropped anew) gives the run's own validation probabilities."""
    from kit.inference import predict
    from kit.runfolder import read_val_probs
    from kit.splits import load_splits
    from kit.train import fit

    cfg = tiny_cfg.replace(crop_mode="face", face_detector="boxes", face_margin=0.2)
    run = fit(cfg)
    env = json.loads((run.run_dir / "env.json").read_text())
    assert env["faces"]["detector"] == "boxes" and env["faces"]["fallback"] == 0
    assert env["weights"] is None and env["normalization"]["source"] == "competition"
    saved = read_val_probs(run.run_dir / "val_probs.csv")
    val = load_splits(cfg).val
    fresh = predict(run.run_dir, val, cfg.replace(cache=False))
    assert list(saved.ids) == [f"{Path(p).parent.name}/{Path(p).stem}" for p in val.path]
    assert np.allclose(fresh, saved.probs, atol=1e-6)
    # the face crop mattered: the centre crop would have given other pictures
    loader = prepared_loader(cfg, tiny_data, progress=False)
    first = str(val.path.iloc[0])
    assert not np.array_equal(
        loader(first), prepare(load_rgb(first), cfg.replace(crop_mode="center"))
    )


def test_the_command_parses_where_the_os_cannot_tell_a_process_its_cores(monkeypatch):
    # macOS and Windows have no os.sched_getaffinity; --workers' default must not need it
    from kit.faces.__main__ import _parser

    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    assert _parser().parse_args(["data"]).workers == 3
