"""kit.data.image_cache: keyed, atomic, memory-mapped cache of prepared pictures."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from filelock import FileLock
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from kit.cache import main as cache_main
from kit.config import Config
from kit.data import image_cache as cache_module
from kit.data.dataset import ImageDataset
from kit.data.image_cache import ImageCache, build_cache, image_key, load_cache
from kit.io import OutputError
from kit.transforms import _resize_step, prepare
from tests._triggers import assert_documented

ROOT = Path(__file__).resolve().parents[1]
SIZE = (12, 16)  # (height, width) of a cached picture
CROP = (0.75, 0.75)


def crop_resize(path: str, size: tuple[int, int] = SIZE, crop=CROP) -> np.ndarray:
    """A deterministic decode + centre crop + resize, as a training loader would do."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        cw, ch = round(w * crop[1]), round(h * crop[0])
        left, top = (w - cw) // 2, (h - ch) // 2
        img = img.crop((left, top, left + cw, top + ch)).resize(size[::-1], Image.BILINEAR)
        return np.asarray(img)


class Counting:
    """A loader that counts its calls and can fail on its n-th call."""

    def __init__(self, fail_at: int | None = None, load=crop_resize) -> None:
        self.calls = 0
        self.fail_at = fail_at
        self.load = load
        self._lock = threading.Lock()

    def __call__(self, path: str) -> np.ndarray:
        with self._lock:
            self.calls += 1
            n = self.calls
        if n == self.fail_at:
            raise RuntimeError("simulated crash")
        return self.load(path)


@pytest.fixture
def images(tmp_path: Path) -> list[str]:
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for i in range(20):
        p = folder / f"img{i:02d}.png"
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(p)
        paths.append(str(p))
    return paths


def build(paths, load=crop_resize, cache_dir=None, **kw) -> ImageCache:
    kw = {"size": SIZE, "crop": CROP, "progress": False, **kw}
    return build_cache(paths, load, cache_dir=cache_dir, **kw)


def stack(cache: ImageCache) -> np.ndarray:
    return np.stack([cache[i] for i in range(len(cache))])


def reference(paths) -> np.ndarray:
    return np.stack([crop_resize(p) for p in paths])


def test_build_equals_load_then_reuses_without_loading(images, tmp_path):
    load = Counting()
    cache = build(images, load, tmp_path / "c")
    assert load.calls == 20
    np.testing.assert_array_equal(stack(cache), reference(images))
    assert cache.path == tmp_path / "c" / f"{cache.key}.npy"
    meta = json.loads((tmp_path / "c" / f"{cache.key}.json").read_text())
    assert meta["paths"] == images and meta["complete"] is True and meta["size"] == list(SIZE)
    assert len(cache) == 20 and cache.nbytes == 20 * 12 * 16 * 3
    assert cache.index_of(images[7]) == 7 and cache.index_of(Path(images[3])) == 3
    np.testing.assert_array_equal(cache(images[5]), crop_resize(images[5]))

    again = build(images, load, tmp_path / "c")
    assert load.calls == 20, "a complete cache must be reused, not rebuilt"
    assert again.key == cache.key
    np.testing.assert_array_equal(stack(again), reference(images))
    assert load_cache(tmp_path / "c", cache.key) is not None


def test_stored_pixels_are_exactly_what_load_returned(images, tmp_path):
    def plain(p):
        with Image.open(p) as img:
            return np.asarray(img.convert("RGB"))

    cache = build(images, plain, tmp_path / "c", size=(24, 32))
    for i, p in enumerate(images):
        with Image.open(p) as img:
            np.testing.assert_array_equal(cache[i], np.array(img))


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_parallel_build_matches_in_process(images, tmp_path, executor):
    cache = build(images, crop_resize, tmp_path / executor, workers=2, executor=executor)
    np.testing.assert_array_equal(stack(cache), reference(images))


def _touch_mtime(p: str) -> None:
    st_ = os.stat(p)
    os.utime(p, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000_000))


def _grow_same_mtime(p: str) -> None:
    st_ = os.stat(p)
    Image.fromarray(np.full((24, 32, 3), 200, np.uint8)).save(p)
    assert os.stat(p).st_size != st_.st_size
    os.utime(p, ns=(st_.st_atime_ns, st_.st_mtime_ns))


@pytest.mark.parametrize("change", [_touch_mtime, _grow_same_mtime], ids=["mtime", "size"])
def test_changed_file_rebuilds(images, tmp_path, change):
    load = Counting()
    first = build(images, load, tmp_path / "c")
    change(images[4])
    second = build(images, load, tmp_path / "c")
    assert second.key != first.key and load.calls == 40
    np.testing.assert_array_equal(stack(second), reference(images))


@pytest.mark.parametrize(
    "kw", [{"size": (10, 8)}, {"crop": (0.5, 0.5)}, {"extra": {"fixes": 1}}, {"crop": None}]
)
def test_changed_spec_rebuilds(images, tmp_path, kw):
    load = Counting(load=lambda p: crop_resize(p, kw.get("size", SIZE), kw.get("crop") or CROP))
    first = build(images, Counting(), tmp_path / "c")
    second = build(images, load, tmp_path / "c", **kw)
    assert second.key != first.key and load.calls == 20
    assert len(list((tmp_path / "c").glob("*.npy"))) == 2


@settings(max_examples=25, deadline=None)
@given(perm=st.permutations(range(5)), extra=st.dictionaries(st.text(max_size=3), st.integers()))
def test_key_is_a_function_of_order_and_extra(perm, extra, tmp_path_factory):
    folder = tmp_path_factory.mktemp("k")
    paths = []
    for i in range(5):
        (folder / f"{i}.bin").write_bytes(b"x" * (i + 1))
        paths.append(str(folder / f"{i}.bin"))
    shuffled = [paths[i] for i in perm]
    key = image_key(shuffled, size=SIZE, crop=CROP, extra=extra)
    assert key == image_key(shuffled, size=SIZE, crop=CROP, extra=dict(extra))
    assert (key == image_key(paths, size=SIZE, crop=CROP, extra=extra)) == (
        list(perm) == sorted(perm)
    )
    assert key != image_key(shuffled, size=SIZE, crop=CROP, extra={**extra, "v": "new"})


def _final_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def test_build_failing_midway_leaves_nothing_then_rebuilds(images, tmp_path):
    folder = tmp_path / "c"
    with pytest.raises(RuntimeError, match=r"img04\.png: simulated crash"):
        build(images, Counting(fail_at=5), folder)
    key = image_key(images, size=SIZE, crop=CROP)
    assert _final_files(folder) == [] and load_cache(folder, key) is None
    assert not list(folder.glob("*.tmp")), "a failed build removes its temporary file"
    cache = build(images, Counting(), folder)
    np.testing.assert_array_equal(stack(cache), reference(images))


_KILLED_BUILD = """
import sys, time
from pathlib import Path
from kit.data.image_cache import build_cache
sys.path.insert(0, {tests!r})
from test_cache import crop_resize, SIZE, CROP
paths, folder, marker = {paths!r}, {folder!r}, Path({marker!r})
def load(p):
    if p == paths[5]:
        marker.write_text("half")
        time.sleep(60)
    return crop_resize(p)
build_cache(paths, load, size=SIZE, crop=CROP, cache_dir=folder, progress=False)
"""


def test_sigkill_mid_build_leaves_no_cache_and_temp_is_cleaned(images, tmp_path):
    folder, marker = tmp_path / "c", tmp_path / "marker"
    code = _KILLED_BUILD.format(
        tests=str(ROOT / "tests"), paths=images, folder=str(folder), marker=str(marker)
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, "the build subprocess ended before the kill"
            assert time.monotonic() < deadline, "the build subprocess never started loading"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    key = image_key(images, size=SIZE, crop=CROP)
    assert list(folder.glob(f".{key}.npy.*.tmp")), "the killed build left its temporary file"
    assert _final_files(folder) == [] and load_cache(folder, key) is None

    # the next build of any key in the folder removes it (the killed build's lock is free) ...
    small = (6, 8)
    other = build(images, partial(crop_resize, size=small), folder, size=small)
    assert not list(folder.glob(f".{key}.*.tmp")) and other.key != key
    load = Counting()
    cache = build(images, load, folder)
    assert load.calls == 20
    np.testing.assert_array_equal(stack(cache), reference(images))
    assert not list(folder.glob("*.tmp")), "leftovers of the killed build are cleaned up"


def test_a_live_builds_temporary_files_are_kept_by_other_builds(images, tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    live, dead = "a" * 32, "b" * 32
    for key in (live, dead):
        (folder / f".{key}.npy.x1y2.tmp").write_bytes(b"partial")
    (folder / f".{dead}_flip.npy.x3.tmp").write_bytes(b"partial")
    (folder / "notes.tmp").write_text("not kit's")
    with FileLock(folder / f".{live}.lock"):  # another process building `live` right now
        build(images, Counting(), folder)
    names = sorted(p.name for p in folder.glob("*.tmp")) + [p.name for p in folder.glob(".*.tmp")]
    assert f".{live}.npy.x1y2.tmp" in names and "notes.tmp" in names
    assert not [n for n in names if dead in n]


def test_leftover_temp_and_uncommitted_files_are_not_used(images, tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    key = image_key(images, size=SIZE, crop=CROP)
    wrong = np.zeros((20, *SIZE, 3), np.uint8)
    np.save(folder / f".{key}.npy.leftover.tmp", wrong)
    np.save(folder / f"{key}.npy", wrong)  # final name but no json: an uncommitted build
    assert load_cache(folder, key) is None
    load = Counting()
    cache = build(images, load, folder)
    assert load.calls == 20
    np.testing.assert_array_equal(stack(cache), reference(images))
    assert not (folder / f".{key}.npy.leftover.tmp").exists()

    meta = json.loads((folder / f"{key}.json").read_text())
    (folder / f"{key}.json").write_text(json.dumps({**meta, "complete": False}))
    assert load_cache(folder, key) is None
    (folder / f"{key}.json").write_text(json.dumps({**meta, "paths": images[::-1]}))
    build(images, load, folder)
    assert load.calls == 40, "a json whose paths differ must not be trusted"


class _Frame(Dataset):
    def __init__(self, cache: ImageCache, paths: list[str]) -> None:
        self.cache, self.paths = cache, paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(self.cache(self.paths[i]))


def test_pickles_cheaply_and_works_in_dataloader_workers(images, tmp_path):
    cache = build(images, crop_resize, tmp_path / "c", flips=True)
    cache[0], cache.flipped(0)  # open the maps: they must still not be pickled
    blob = pickle.dumps(cache)
    assert len(blob) < cache.nbytes / 4
    clone = pickle.loads(blob)
    np.testing.assert_array_equal(stack(clone), stack(cache))
    np.testing.assert_array_equal(clone.flipped(3), cache.flipped(3))

    # The platform's default start method: fork on Linux (the workers inherit the open map),
    # spawn / forkserver elsewhere (they unpickle the cache as above and reopen it).
    loader = DataLoader(_Frame(cache, images), batch_size=4, num_workers=2)
    got = torch.cat(list(loader)).numpy()
    np.testing.assert_array_equal(got, reference(images))


def test_flips_are_mirror_images_and_can_be_added_later(images, tmp_path):
    load = Counting()
    plain = build(images, load, tmp_path / "c")
    with pytest.raises(ValueError, match="flips=True"):
        plain.flipped(0)
    flipped = build(images, load, tmp_path / "c", flips=True)
    assert load.calls == 20, "flips come from the stored pixels, not a second decode"
    assert flipped.nbytes == 2 * plain.nbytes and flipped.flip_path.exists()
    for i, p in enumerate(images):
        np.testing.assert_array_equal(flipped.flipped(i), np.flip(crop_resize(p), axis=1))
    assert build(images, load, tmp_path / "c").has_flips and load.calls == 20


def test_rows_reads_a_batch_in_any_order_with_or_without_preadv(images, tmp_path, monkeypatch):
    cache = build(images, crop_resize, tmp_path / "c", flips=True)
    want = reference(images)
    order, flips = [7, 2, 19, 2, 0, -1], [False, True, False, False, True, True]
    for preadv in (True, False):
        monkeypatch.setattr(cache_module, "_PREADV", preadv)
        fresh = ImageCache(cache.path, cache.meta)
        got = fresh.rows(order, flips)
        assert got.shape == (6, *SIZE, 3) and got.flags.writeable
        for k, (i, flip) in enumerate(zip(order, flips, strict=True)):
            np.testing.assert_array_equal(got[k], want[i][:, ::-1] if flip else want[i])
        np.testing.assert_array_equal(fresh.rows([3, 1]), want[[3, 1]])
        assert fresh.rows([]).shape == (0, *SIZE, 3)
        with pytest.raises(IndexError):
            fresh.rows([0, 20])
    plain = build(images, crop_resize, tmp_path / "plain")
    with pytest.raises(ValueError, match="flips=True"):
        plain.rows([0, 1], [False, True])


def test_batch_reads_in_forked_workers_share_the_parents_descriptor(images, tmp_path):
    cache = build(images, crop_resize, tmp_path / "c")
    cache.rows([0])  # the parent opens its descriptor before the workers fork
    dataset = ImageDataset(pd.DataFrame({"path": images}), None, labels=None, loader=cache)
    loader = DataLoader(dataset, batch_size=3, num_workers=2)
    got = torch.cat([batch for batch, _ in loader]).numpy()
    np.testing.assert_array_equal(got, reference(images))


@pytest.mark.parametrize(
    ("bad", "found"),
    [
        (lambda p: np.zeros((12, 15, 3), np.uint8), r"\(12, 15, 3\) uint8"),
        (lambda p: np.zeros((12, 16, 3), np.float32), "float32"),
        (lambda p: Image.new("RGB", (16, 12)), "Image"),
    ],
)
def test_wrong_output_names_the_image_and_the_expected_shape(images, tmp_path, bad, found):
    with pytest.raises(ValueError, match=r"img00\.png: load\(\) returned .*") as info:
        build(images, bad, tmp_path / "c")
    assert "(12, 16, 3) uint8" in str(info.value)
    assert re.search(found, str(info.value))


def test_unreadable_image_names_the_file(images, tmp_path):
    Path(images[2]).write_text("not a picture")
    with pytest.raises(OSError, match=r"img02\.png"):
        build(images, crop_resize, tmp_path / "c")

    def pathless(p):
        if p == images[2]:
            raise OSError("broken data stream")
        return crop_resize(p)

    with pytest.raises(OSError, match=r"img02\.png: broken data stream") as info:
        build(images, pathless, tmp_path / "c")
    assert not isinstance(info.value, OutputError), "a bad image is not a bad cache folder"
    assert str(info.value.__cause__) == "broken data stream"
    with pytest.raises(FileNotFoundError, match=r"missing\.png"):
        build([*images, str(tmp_path / "missing.png")], crop_resize, tmp_path / "c")


def test_unwritable_cache_dir_is_an_output_error(images, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match=r"cannot write the image cache in .*file") as err:
        build(images, crop_resize, blocker / "cache")
    assert_documented("cache-unwritable", str(err.value))


def test_bad_arguments(images, tmp_path):
    with pytest.raises(ValueError, match="at least one image"):
        build([], crop_resize, tmp_path)
    with pytest.raises(ValueError, match=r"\(height, width\)"):
        build(images, crop_resize, tmp_path, size=(12,))
    with pytest.raises(TypeError, match="JSON"):
        build(images, crop_resize, tmp_path, extra={"f": object()})
    with pytest.raises(ValueError, match="unknown executor"):
        build(images, crop_resize, tmp_path, workers=2, executor="gpu")
    cache = build(images, crop_resize, tmp_path)
    with pytest.raises(KeyError, match="not in image cache"):
        cache.index_of("elsewhere.png")


# ---- python -m kit.cache --list / --prune ----------------------------------------------------
def _states(capsys) -> dict[str, str]:
    out = capsys.readouterr().out
    return dict(re.findall(r"^([0-9a-f]{32})\s+(\w+)", out, re.M))


def test_list_and_prune_show_then_remove_only_old_caches(images, tmp_path, capsys):
    folder = tmp_path / "c"
    old = build(images[10:], cache_dir=folder, extra={"loader": 1})  # then kit's loader changed
    new = build(images[10:], cache_dir=folder, extra={"loader": 2})
    moved = build(images[:5], cache_dir=folder)
    partial_key = build(images[5:9], cache_dir=folder).key
    (folder / f"{partial_key}.json").unlink()  # an interrupted build
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(images[0])  # a picture replaced
    os.utime(images[0], ns=(1, 1))
    (folder / f".{'c' * 32}.npy.x.tmp").write_bytes(b"killed")
    before = sorted(p.name for p in folder.iterdir())

    assert cache_main(["--list", str(folder)]) == 0
    states = _states(capsys)
    assert states == {
        old.key: "superseded",
        new.key: "ok",
        moved.key: "stale",
        partial_key: "partial",
        "c" * 32: "leftover",
    }
    assert cache_main(["--prune", str(folder)]) == 0  # lists, deletes nothing
    assert set(_states(capsys)) == set(states) - {new.key}
    assert sorted(p.name for p in folder.iterdir()) == before

    assert cache_main(["--prune", str(folder), "--yes"]) == 0
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted([f".{new.key}.lock", f"{new.key}.npy", f"{new.key}.json"])
    assert load_cache(folder, new.key) is not None


def test_prune_keeps_a_cache_being_built(images, tmp_path, capsys):
    folder = tmp_path / "c"
    folder.mkdir()
    busy = "d" * 32
    (folder / f".{busy}.npy.x.tmp").write_bytes(b"live")
    with FileLock(folder / f".{busy}.lock"):
        assert cache_main(["--list", str(folder)]) == 0
        assert _states(capsys)[busy] == "building"
        assert cache_main(["--prune", str(folder), "--yes"]) == 0
    assert (folder / f".{busy}.npy.x.tmp").exists()


def test_cache_command_names_a_missing_folder(tmp_path, capsys):
    assert cache_main(["--list", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no such cache folder" in err and "nope" in err
    assert_documented("cache-no-folder", err)


# ---- the picture preparation the cache stores ------------------------------------------------
@pytest.mark.parametrize(
    ("size", "interpolation"), [((224, 224), cv2.INTER_LINEAR), ((64, 48), cv2.INTER_AREA)]
)
def test_prepare_shrinks_bilinear_below_2x_and_by_area_from_2x(size, interpolation):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (512, 384, 3), dtype=np.uint8)
    cfg = Config(image_size=size, crop=(0.625, 0.667))
    top, left = (512 - 320) // 2, (384 - 256) // 2
    crop = image[top : top + 320, left : left + 256]
    expected = cv2.resize(crop, size[::-1], interpolation=interpolation)
    np.testing.assert_array_equal(prepare(image, cfg), expected)


def test_prepare_builds_its_resize_once_per_geometry():
    _resize_step.cache_clear()
    image = np.zeros((40, 30, 3), np.uint8)
    for _ in range(5):
        prepare(image, Config(image_size=(16, 12)))
    prepare(image, Config(image_size=(8, 8)))
    info = _resize_step.cache_info()
    assert (info.misses, info.hits) == (2, 4)


def test_prepare_enlarges_with_the_weights_interpolation():
    image = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    cfg = Config(image_size=(64, 48), crop=(1.0, 1.0))
    np.testing.assert_array_equal(
        prepare(image, cfg), cv2.resize(image, (48, 64), interpolation=cv2.INTER_LINEAR)
    )


@pytest.mark.parametrize("flips", [False, True], ids=["pictures", "mirror images"])
@pytest.mark.parametrize(
    "fix", [None, "pass another --cache-dir DIR (or --preview PNG), or free space"]
)
def test_a_full_disk_while_caching_suggests_the_cache_flags(
    tmp_path, monkeypatch, flips, fix, capsys
):
    """The cache's own way out (--cache-dir elsewhere, --no-cache), not an output folder; a
    command's generic fix does not replace it."""
    import errno

    from kit.cli import run_cli

    real, calls = cache_module._new_npy, []

    def full(path, shape):
        calls.append(path)
        if len(calls) == (2 if flips else 1):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, shape)

    monkeypatch.setattr(cache_module, "_new_npy", full)
    picture = tmp_path / "a.png"
    picture.write_bytes(b"x")

    def build(argv):
        build_cache(
            [str(picture)],
            lambda p: np.zeros((8, 8, 3), np.uint8),
            size=(8, 8),
            cache_dir=tmp_path / "cache",
            progress=False,
            flips=flips,
        )

    assert run_cli(build, [], output_fix=fix) == 2
    err = capsys.readouterr().err
    assert "the disk is full" in err and "--cache-dir DIR" in err and "(--no-cache)" in err
    assert "choose another output folder" not in err and "--preview" not in err
    assert_documented("cache-disk-full", err)
    assert not list((tmp_path / "cache").rglob("*.tmp"))
