"""ImageDataset: pictures through a transform, training targets under training thresholds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

from kit.config import Config
from kit.data import read_train
from kit.data.dataset import ImageDataset, load_rgb, training_labels
from kit.models import OUTPUT_KINDS
from kit.transforms import build_transforms


def _frame() -> pd.DataFrame:
    # hand-made rows: (mask, gender, age) -> official and (30, 58) labels written out by hand
    rows = [(0, 0, 25), (1, 1, 58), (2, 0, 59), (2, 1, 60), (0, 1, 30)]
    df = pd.DataFrame(rows, columns=["mask", "gender", "age"])
    df["label"] = [0, 10, 13, 17, 4]
    df["path"] = [f"img{i}.png" for i in range(len(df))]
    return df


def test_training_labels_use_the_training_thresholds():
    df = _frame()
    np.testing.assert_array_equal(training_labels(df), [0, 10, 13, 17, 4])
    # with 58 as the old-age boundary, the 58- and 59-year-olds move to the >=60 group
    np.testing.assert_array_equal(training_labels(df, (30, 58)), [0, 11, 14, 17, 4])
    with pytest.raises(ValueError, match="age"):
        training_labels(df.drop(columns="age"), (30, 58))


def _fake_loader(path: str) -> np.ndarray:
    value = int(path[3])  # img<k>.png -> a flat picture of brightness k
    return np.full((16, 12, 3), value, dtype=np.uint8)


def test_items_use_the_loader_transform_and_target():
    df = _frame()
    ds = ImageDataset(df, None, age_thresholds=(30, 58), loader=_fake_loader)
    image, target = ds[1]
    assert image.shape == (16, 12, 3) and image[0, 0, 0] == 1 and target == 11
    multi = ImageDataset(df, None, target=OUTPUT_KINDS["heads"].target, loader=_fake_loader)
    assert multi[3][1] == {"mask": 2, "gender": 1, "age": 2}
    unlabeled = ImageDataset(df.drop(columns="label"), None, labels=None, loader=_fake_loader)
    assert unlabeled[0][1] == -1


def test_multi_head_targets_collate_into_tensors(tiny_data):
    df = read_train(tiny_data).head(6)
    _, eval_tf = build_transforms(Config(image_size=(32, 24)))
    multi = ImageDataset(df, eval_tf, target=OUTPUT_KINDS["heads"].target)
    images, targets = next(iter(DataLoader(multi, batch_size=6)))
    assert images.shape == (6, 3, 32, 24) and images.dtype == torch.float32
    assert set(targets) == {"mask", "gender", "age"}
    np.testing.assert_array_equal(targets["mask"].numpy(), df["mask"].to_numpy())
    np.testing.assert_array_equal(targets["age"].numpy(), df["age_group"].to_numpy())


def test_load_rgb_gives_uint8_rgb_and_names_a_bad_file(tiny_data, tmp_path):
    path = read_train(tiny_data)["path"].iloc[0]
    img = load_rgb(path)
    assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a picture")
    with pytest.raises(OSError, match="broken.jpg"):
        load_rgb(str(bad))


def test_bad_frames_are_rejected():
    with pytest.raises(ValueError, match="path"):
        ImageDataset(_frame().drop(columns="path"), None)
    with pytest.raises(ValueError, match="no label column 'grade'"):
        ImageDataset(_frame(), None, labels="grade")
