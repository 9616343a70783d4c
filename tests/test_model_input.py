"""uint8 all the way to the device: the loaders ship uint8 pictures, ``to_model_input`` makes
the model's tensor there, equal to the CPU path's (``A.Normalize`` + ``ToTensorV2``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from kit.batch import to_model_input
from kit.data.dataset import ImageDataset, collate_pictures
from kit.data.sampling import SeededDataset, train_loader
from kit.splits import load_splits
from kit.train.forward import frame_loader
from kit.train.setup import RunPictures, train_dataset
from kit.transforms import build_transforms, normalization

CPU = torch.device("cpu")


def _model_input(images, cfg, augment=None):
    """``images`` as kit's training loop hands them to ``cfg``'s model."""
    norm = normalization(cfg)
    return to_model_input(
        images, CPU, mean=norm.mean, std=norm.std, channels_last=cfg.channels_last, augment=augment
    )


@pytest.mark.parametrize("pretrained", [False, True])  # competition's / the weights' mean, std
@pytest.mark.parametrize("cache", [False, True])
def test_an_eval_batch_is_the_cpu_paths_tensor_to_the_bit(tiny_cfg, pretrained, cache, tmp_path):
    cfg = tiny_cfg.replace(pretrained=pretrained, cache=cache, cache_dir=str(tmp_path / "c"))
    data = load_splits(cfg)
    pictures = RunPictures.for_run(cfg, data, progress=False)
    df = data.val.iloc[:20]
    _, old_tf = build_transforms(cfg, prepared=pictures.prepared)
    source = {"loader": pictures.eval} if pictures.prepared else {}
    old = next(iter(DataLoader(ImageDataset(df, old_tf, labels=None, **source), batch_size=20)))
    new = next(iter(frame_loader(df, cfg, pictures.eval, batch_size=20)))
    assert new[0].dtype == torch.uint8 and new[0].shape == (20, *cfg.image_size, 3)
    assert old[0].dtype == torch.float32
    model_input = _model_input(new[0], cfg)
    assert torch.equal(model_input, old[0]) and model_input.is_contiguous()


def test_augmented_training_batches_match_the_cpu_path_seed_for_seed(tiny_cfg):
    cfg = tiny_cfg.replace(preset="strong", batch_size=8)
    data = load_splits(cfg)
    rows = data.train.iloc[:16]
    pictures = RunPictures.for_run(cfg, data, progress=False)
    new_ds = train_dataset(cfg, rows, int, pictures)
    old_tf, _ = build_transforms(cfg, prepared=pictures.prepared)
    old_ds = ImageDataset(rows, old_tf, "label", loader=pictures.train)
    batches = {}
    for name, ds in (("new", new_ds), ("old", old_ds)):
        generator = torch.Generator().manual_seed(3)
        batches[name] = [(x, y) for x, y in train_loader(ds, cfg, generator)]
    assert len(batches["new"]) == 2
    for (new, new_y), (old, old_y) in zip(batches["new"], batches["old"], strict=True):
        assert new.dtype == torch.uint8
        assert torch.equal(_model_input(new, cfg), old) and torch.equal(new_y, old_y)


def test_channels_last_and_floating_batches(tiny_cfg):
    cfg = tiny_cfg.replace(channels_last=True)
    images = torch.randint(0, 256, (2, 6, 5, 3), dtype=torch.uint8)
    out = _model_input(images, cfg)
    assert out.shape == (2, 3, 6, 5) and out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    plain = _model_input(images, tiny_cfg)
    assert plain.is_contiguous() and torch.equal(plain, out)
    # a batch already normalised (a loader of one's own) is only moved and laid out
    floats = torch.randn(2, 3, 6, 5)
    assert torch.equal(_model_input(floats, tiny_cfg), floats)
    with pytest.raises(ValueError, match=r"\(batch, height, width, 3\).*\(2, 3, 6, 5\)"):
        _model_input(images.permute(0, 3, 1, 2), tiny_cfg)


def test_a_batch_of_keys_reads_and_seeds_like_one_key_at_a_time(tiny_cfg, tmp_path):
    cfg = tiny_cfg.replace(preset="strong", cache_flips=True, cache_dir=str(tmp_path / "c"))
    data = load_splits(cfg)
    pictures = RunPictures.for_run(cfg, data, progress=False)
    seeded = SeededDataset(train_dataset(cfg, data.train.iloc[:12], int, pictures))
    keys = [(i, 1000 + 7 * i) for i in (5, 0, 11, 3, 3, 8)]  # unsorted, one row twice
    batch = seeded.__getitems__(keys)
    for key, (image, target) in zip(keys, batch, strict=True):
        one, one_target = seeded[key]
        assert np.array_equal(image, one) and target == one_target
    again = seeded.__getitems__(keys)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(batch, again, strict=True))
    other = seeded.__getitems__([(i, s + 1) for i, s in keys])
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(batch, other, strict=True))


def test_one_seed_drives_independent_steps(tiny_cfg):
    # Every step of a pipeline seeded with set_random_seed draws the same numbers, so the
    # strong preset's flip, colour jitter and affine (p=0.5 each) always fired together and a
    # flip alone never happened; seeded per sample by kit, the steps are independent.
    train_tf, _ = build_transforms(tiny_cfg.replace(preset="strong"), prepared=True, tensor=False)
    seeded = SeededDataset(ImageDataset(_frame(), train_tf, labels=None, loader=_grey))
    image = _grey("x")
    outputs = [seeded[(0, seed)][0] for seed in range(200)]
    flipped_only = sum(np.array_equal(out, image[:, ::-1]) for out in outputs)
    unchanged = sum(np.array_equal(out, image) for out in outputs)
    assert 2 <= flipped_only <= 30 and 2 <= unchanged <= 40  # about 6% and 6% of 200
    train_tf.set_random_seed(0)
    steps = train_tf.transforms
    assert len({t.py_random.random() for t in steps}) == 1  # albumentations' own seeding


def test_a_fixed_pipeline_is_not_reseeded(tiny_cfg):
    for prepared in (True, False):
        base, _ = build_transforms(tiny_cfg, prepared=prepared, tensor=False)
        assert SeededDataset(ImageDataset(_frame(), base, labels=None))._transform is None


def _frame():
    import pandas as pd

    return pd.DataFrame({"path": ["x"]})


def _grey(path: str) -> np.ndarray:
    # a picture whose mirror image differs from it and from every other change
    return np.tile(np.arange(24, dtype=np.uint8)[None, :, None] * 10, (32, 1, 3))


def test_a_batch_read_whole_is_collated_without_a_copy():
    whole = np.arange(4 * 3 * 2 * 3, dtype=np.uint8).reshape(4, 3, 2, 3).copy()  # as rows() gives
    targets = [{"mask": 1, "age": 2}] * 4
    images, collated_targets = collate_pictures(list(zip(list(whole), targets, strict=True)))
    assert np.shares_memory(images.numpy(), whole) and torch.equal(images, torch.from_numpy(whole))
    assert torch.equal(collated_targets["age"], torch.full((4,), 2))
    for rows in (
        [whole[1], whole[0], whole[2], whole[3]],
        list(whole)[:3],
        [r.copy() for r in whole],
    ):
        images, labels = collate_pictures([(r, 0) for r in rows])  # reordered, part, fresh arrays
        assert not np.shares_memory(images.numpy(), whole)
        assert torch.equal(images, torch.from_numpy(np.stack(rows))) and labels.tolist() == [
            0
        ] * len(rows)
