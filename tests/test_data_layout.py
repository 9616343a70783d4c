"""read_train / read_eval / verify_images on layouts built from real and fuzzed metadata."""

from __future__ import annotations

import io
import re
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from kit.data import DataError, read_eval, read_train, verify_images
from tests._layout_helpers import (
    DATA,
    STEM_MASK,
    assert_frames_equal,
    expected_frame,
    real_meta,
    tiny_image,
    write_eval,
    write_train,
)
from tests._triggers import assert_documented

SPECIAL = ["000600", "000600-1", "001498", "001498-1", "003397"]
EXT_CASES = ["jpg", "JPG", "jpeg", "Jpeg", "JPEG", "png", "PNG"]


def _jpg(i: int, stem: str) -> str:
    return "jpg"


def _subset() -> pd.DataFrame:
    """The suffixed ids, both 003397 folders and 40 other real people."""
    meta = real_meta()
    special = meta[meta["id"].isin(SPECIAL)]
    others = meta[~meta["id"].isin(SPECIAL)].sample(40, random_state=0)
    return pd.concat([others, special]).reset_index(drop=True)


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """Three real people, all-jpg."""
    return write_train(tmp_path, real_meta().iloc[:3])


def test_real_metadata_subset_parses(tmp_path: Path) -> None:
    meta = _subset()
    assert (meta["id"] == "003397").sum() == 2

    def ext_for(i: int, stem: str) -> str:  # every spelling, varying within and across people
        return EXT_CASES[(i + list(STEM_MASK).index(stem)) % len(EXT_CASES)]

    write_train(tmp_path, meta, ext_for)
    got = read_train(tmp_path)
    assert_frames_equal(got, expected_frame(tmp_path, meta, ext_for))
    assert {"000600-1", "001498-1"} <= set(got["person_id"])
    assert got.loc[got["person_id"] == "003397", "age"].value_counts().to_dict() == {19: 7, 20: 7}


def test_full_real_train_csv(tmp_path: Path) -> None:
    # All 2,700 real rows, with empty files (read_train does not open pictures).
    meta = real_meta()
    write_train(tmp_path, meta, content=lambda ext: b"")
    got = read_train(tmp_path)
    assert len(got) == 7 * 2700
    assert got["person_id"].nunique() == 2699  # 003397 twice
    assert set(got["person_id"]) == set(meta["id"])
    people = got.drop_duplicates("folder")
    # Per-person age groups published in domain.md: <30 1,281; 30-59 1,227; >=60 192.
    assert people["age_group"].value_counts().sort_index().tolist() == [1281, 1227, 192]
    assert people.loc[people["age_group"] == 2, "age"].eq(60).all()
    want = expected_frame(tmp_path, meta, _jpg)
    assert got["label"].tolist() == want["label"].tolist()


def test_sorted_by_folder_then_stem(tmp_path: Path) -> None:
    meta = real_meta().iloc[[5, 0, 3]]  # csv order differs from folder order
    got = read_train(write_train(tmp_path, meta))
    folders = sorted(meta["path"])
    stems = list(STEM_MASK)
    assert got["image_id"].tolist() == [f"{f}/{s}" for f in folders for s in stems]


def test_dot_files_and_folders_skipped(small: Path) -> None:
    images = small / "train" / "images"
    folder = images / real_meta()["path"][0]
    (folder / "._mask1.jpg").write_bytes(b"\x00\x05\x16\x07junk")
    (folder / ".DS_Store").write_bytes(b"junk")
    (folder / ".hidden").mkdir()
    (folder / ".hidden" / "mask1.jpg").write_bytes(tiny_image("jpg"))
    (folder / "notes.txt").write_text("not a picture")
    (images / ".DS_Store").write_bytes(b"junk")
    (images / "._000001_female_Asian_45").mkdir()
    got = read_train(small)
    assert len(got) == 21
    assert not any("/." in p for p in got["path"])


def _message(small: Path, match: str | None = None) -> str:
    with pytest.raises(DataError) as info:
        read_train(small)
    if match:
        assert re.search(match, str(info.value)), str(info.value)
    return str(info.value)


def _rewrite_csv(root: Path, text: str) -> None:
    (root / "train" / "train.csv").write_text(text, encoding="utf-8")


def test_missing_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere.*data folder not found") as err:
        read_train(tmp_path / "nowhere")
    assert_documented("data-folder-missing", str(err.value))
    with pytest.raises(DataError, match="nowhere.*data folder not found"):
        read_eval(tmp_path / "nowhere")


def test_train_csv_missing(small: Path) -> None:
    (small / "train" / "train.csv").unlink()
    seen = _message(small, r"train\.csv: file not found.*id,gender,race,age,path")
    assert_documented("train-csv-missing", seen)


def test_train_csv_empty(small: Path) -> None:
    _rewrite_csv(small, "")
    assert_documented("csv-empty", _message(small, r"train\.csv: file is empty"))
    _rewrite_csv(small, "id,gender,race,age,path\n")
    seen = _message(small, r"train\.csv: has a header but no rows")
    assert_documented("csv-header-only", seen)


def test_train_csv_unparseable(small: Path) -> None:
    good = "000002,female,Asian,52,000002_female_Asian_52"
    _rewrite_csv(small, f"id,gender,race,age,path\n{good}\n000001,female,Asian,45,a,b,c\n")
    _message(small, r"train\.csv line 3: found 7 fields, expected 5 as in the header")
    _rewrite_csv(small, "id,gender,race,age,path\n000001,female,Asian,45\n")
    seen = _message(small, r"train\.csv line 2: found 4 fields, expected 5")
    assert_documented("csv-field-count", seen)
    (small / "train" / "train.csv").write_bytes(b"id,gender,race,age,path\n\xff\xfe,\x80\n")
    seen = _message(
        small, r"train\.csv line 2: byte b'\\xff' is not UTF-8 text.*save it as \"CSV UTF-8"
    )
    assert_documented("csv-not-text", seen)
    _rewrite_csv(small, "id,gender,race,age,path,id\n")
    seen = _message(small, r"train\.csv: column\(s\) id appear twice")
    assert_documented("csv-column-twice", seen)


def test_train_csv_missing_column(small: Path) -> None:
    _rewrite_csv(small, "id,gender,race,path\n000001,female,Asian,000001_female_Asian_45\n")
    seen = _message(
        small, r"train\.csv: missing column\(s\) age; found columns id, gender, race, path"
    )
    assert_documented("csv-column-missing", seen)


def test_person_folder_missing(small: Path) -> None:
    folder = real_meta()["path"][1]
    shutil.rmtree(small / "train" / "images" / folder)
    seen = _message(small, rf"{folder}: person folder not found \(listed on .*train\.csv line 3")
    assert_documented("person-folder-missing", seen)


def test_missing_stem_named(small: Path) -> None:
    folder = small / "train" / "images" / real_meta()["path"][0]
    (folder / "incorrect_mask.jpg").unlink()
    (folder / "mask3.jpg").unlink()
    _message(small, r"missing picture\(s\) mask3, incorrect_mask \(listed on .*train\.csv line 2")


def test_unexpected_stem(small: Path) -> None:
    folder = small / "train" / "images" / real_meta()["path"][2]
    (folder / "mask6.jpg").write_bytes(tiny_image("jpg"))
    seen = _message(small, r"mask6\.jpg: unexpected picture 'mask6' \(listed on .*line 4")
    assert_documented("picture-unexpected", seen)


def test_two_files_for_one_stem(small: Path) -> None:
    folder = small / "train" / "images" / real_meta()["path"][0]
    (folder / "normal.PNG").write_bytes(tiny_image("png"))
    seen = _message(small, r"two files for 'normal': normal\.PNG, normal\.jpg")
    assert_documented("picture-twice", seen)


def test_unsupported_extension_of_a_stem(small: Path) -> None:
    folder = small / "train" / "images" / real_meta()["path"][0]
    (folder / "mask1.jpg").rename(folder / "mask1.gif")
    seen = _message(small, r"mask1\.gif: unsupported extension '\.gif'")
    assert_documented("picture-extension", seen)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("gender", "M", r"line 3, field 'gender': found 'M', expected 'male' or 'female'"),
        ("age", "forty", r"line 3, field 'age': found 'forty', expected a whole number"),
        ("age", "45.5", r"line 3, field 'age': found '45.5'"),
        ("age", "-3", r"line 3, field 'age': found '-3'"),
        ("age", "121", r"line 3, field 'age': found 121, expected an age 0..120"),
    ],
)
def test_bad_gender_or_age(small: Path, field: str, value: str, expected: str) -> None:
    meta = real_meta().iloc[:3].copy()
    meta.loc[1, field] = value
    meta.to_csv(small / "train" / "train.csv", index=False)
    seen = _message(small, r"train\.csv " + expected)
    if value == "45.5":  # the page's example
        assert_documented("age-invalid", seen)


def test_duplicated_path(small: Path) -> None:
    meta = real_meta().iloc[[0, 1, 2, 0]]
    meta.to_csv(small / "train" / "train.csv", index=False)
    _message(small, r"line 2, field 'path': '000001_female_Asian_45' is also listed on line\(s\) 5")


def test_not_strict_skips_people_with_one_warning(tmp_path: Path) -> None:
    meta = real_meta().iloc[:6].copy()
    write_train(tmp_path, meta)
    (tmp_path / "train" / "images" / meta["path"][1] / "normal.jpg").unlink()
    meta.loc[4, "gender"] = "x"
    meta.to_csv(tmp_path / "train" / "train.csv", index=False)
    with pytest.raises(DataError, match=r"and 1 more problem"):
        read_train(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = read_train(tmp_path, strict=False)
    assert len(caught) == 1
    text = str(caught[0].message)
    assert "skipped 2 people (13 images)" in text
    assert "missing picture(s) normal" in text and "field 'gender'" in text
    keep = meta.drop(index=[1, 4])
    assert_frames_equal(got, expected_frame(tmp_path, keep, _jpg))


def test_not_strict_still_fails_on_structure(small: Path) -> None:
    _rewrite_csv(small, "id,gender,age,path\n")
    with pytest.raises(DataError, match="missing column"):
        read_train(small, strict=False)
    meta = real_meta().iloc[:3].assign(age="old")
    meta.to_csv(small / "train" / "train.csv", index=False)
    with pytest.raises(DataError, match=r"none of its 3 people can be read: .*line 2, field 'age'"):
        read_train(small, strict=False)


# ---- read_eval -----------------------------------------------------------------------------


def _real_eval_ids(n: int) -> list[str]:
    return pd.read_csv(DATA / "real_eval_info.csv", dtype=str)["ImageID"].head(n).tolist()


def test_read_eval_keeps_info_order(tmp_path: Path) -> None:
    ids = _real_eval_ids(300)
    write_eval(tmp_path, ids)
    got = read_eval(tmp_path)
    assert list(got.columns) == ["image_id", "ImageID", "path"]
    assert got["ImageID"].tolist() == ids and got["image_id"].tolist() == ids
    images = (tmp_path / "eval" / "images").resolve()
    assert got["path"].tolist() == [str(images / i) for i in ids]
    assert all(Path(p).is_absolute() for p in got["path"])


def test_read_eval_file_name_case_and_extension(tmp_path: Path) -> None:
    write_eval(tmp_path, ["a" * 40 + ".jpg", "b" * 40 + ".jpg"])
    images = tmp_path / "eval" / "images"
    (images / ("a" * 40 + ".jpg")).rename(images / ("a" * 40 + ".JPG"))
    pd.DataFrame({"ImageID": ["a" * 40 + ".jpg", "b" * 40], "ans": 0}).to_csv(
        tmp_path / "eval" / "info.csv", index=False
    )
    got = read_eval(tmp_path)
    assert [Path(p).name for p in got["path"]] == ["a" * 40 + ".JPG", "b" * 40 + ".jpg"]


def test_read_eval_errors(tmp_path: Path) -> None:
    ids = _real_eval_ids(5)
    write_eval(tmp_path, ids)
    info = tmp_path / "eval" / "info.csv"
    (tmp_path / "eval" / "images" / ids[3]).unlink()
    with pytest.raises(
        DataError, match=rf"info\.csv, field 'ImageID': 1 of 5 .*line 5: .*{ids[3]}"
    ):
        read_eval(tmp_path)
    with pytest.warns(UserWarning, match="dropped 1 rows") as caught:
        got = read_eval(tmp_path, strict=False)
    assert_documented("eval-dropped", "\n".join(str(w.message) for w in caught))
    assert got["ImageID"].tolist() == ids[:3] + ids[4:]

    pd.DataFrame({"ImageID": [ids[0], ids[1], ids[0]]}).to_csv(info, index=False)
    with pytest.raises(
        DataError, match=rf"info\.csv lines 2, 4, field 'ImageID': '{ids[0]}'"
    ) as err:
        read_eval(tmp_path, strict=False)
    assert_documented("eval-id-twice", str(err.value))
    pd.DataFrame({"image": ids}).to_csv(info, index=False)
    with pytest.raises(DataError, match=r"info\.csv: missing column\(s\) ImageID"):
        read_eval(tmp_path)
    info.unlink()
    with pytest.raises(DataError, match=r"info\.csv: file not found"):
        read_eval(tmp_path)


# ---- verify_images -------------------------------------------------------------------------


def _noise_jpeg() -> bytes:
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG")
    return buf.getvalue()


def test_verify_images_finds_bad_files(small: Path) -> None:
    frame = read_train(small)
    assert verify_images(frame) is frame
    assert verify_images(frame, decode=True) is frame
    paths = frame["path"].tolist()
    Path(paths[0]).write_bytes(b"")
    Path(paths[8]).write_bytes(_noise_jpeg()[:-300])
    with Image.open(paths[8]) as image:
        image.verify()  # PIL's own check does not notice the truncation
    Path(paths[15]).write_bytes(b"this is not an image at all")
    png = Path(paths[20]).with_suffix(".png")
    Path(paths[20]).rename(png)
    png.write_bytes(tiny_image("png")[:-12])  # IEND chunk cut off
    frame.loc[20, "path"] = str(png)
    with pytest.raises(DataError) as info:
        verify_images(frame)
    message = str(info.value)
    assert message.startswith("4 of 21 image files")
    for i, why in [(0, "empty"), (8, "truncated JPEG"), (15, "not a readable"), (20, "PNG")]:
        assert f"{frame['path'][i]}: " in message and why in message
    assert_documented("image-empty", message)
    assert_documented("image-truncated", message)
    assert_documented("image-unreadable", message)
    with pytest.warns(UserWarning, match="dropped 4 of 21"):
        kept = verify_images(frame, strict=False)
    bad = (0, 8, 15, 20)
    assert kept["path"].tolist() == [p for i, p in enumerate(frame["path"]) if i not in bad]
    with pytest.raises(DataError, match="no 'path' column"):
        verify_images(frame.drop(columns="path"))


# ---- fuzz: odd folder names ----------------------------------------------------------------

_NAME = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\"),
    min_size=1,
    max_size=24,
).filter(lambda s: s == s.strip() and not s.startswith(".") and len(s.encode()) < 200)
_PERSON = st.tuples(
    st.from_regex(r"\A[0-9]{6}(-[1-3])?\Z"),
    st.sampled_from(["male", "female"]),
    st.integers(0, 120),
    _NAME,
    st.lists(st.sampled_from(EXT_CASES), min_size=7, max_size=7),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PERSON, min_size=1, max_size=5, unique_by=lambda p: p[3].casefold()))
def test_fuzzed_folder_names_parse_like_the_metadata(people: list) -> None:
    meta = pd.DataFrame(
        [(pid, g, "Asian", str(age), name) for pid, g, age, name, _ in people],
        columns=["id", "gender", "race", "age", "path"],
    )
    exts = [p[4] for p in people]

    def ext_for(i: int, stem: str) -> str:
        return exts[i][list(STEM_MASK).index(stem)]

    with tempfile.TemporaryDirectory() as tmp:
        root = write_train(Path(tmp), meta, ext_for, content=lambda ext: b"x")
        assert_frames_equal(read_train(root), expected_frame(root, meta, ext_for))
