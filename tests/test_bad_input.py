"""Bad input stops fit() before any training with the readers' own message, or with
strict_data=False is skipped with one warning that counts what was skipped.

The readers' messages themselves (each case of train.csv, info.csv, folders, pictures, fixes,
config, prediction files) are tested in test_data_layout.py, test_data_fixes.py,
test_config.py, test_ensemble.py and test_score.py; docs/troubleshooting.md lists them all
(checked by test_troubleshooting.py). Here: that they reach the user of ``fit`` unchanged, early.
"""

from __future__ import annotations

import logging
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from torch.utils.data import DataLoader

import kit.train.loop as loop
from kit.config import Config
from kit.data import DataError, read_eval, read_train, verify_images
from kit.data.dataset import ImageDataset, load_rgb
from kit.data.fixture import make_fixture
from kit.ensemble import ensemble
from kit.ensemble.__main__ import main as ensemble_main
from kit.recipe import parse_args
from kit.splits import load_splits
from kit.train import fit
from tests._runfolders import Preds, RunSpec, one_hot_probs, summary, write_run
from tests._triggers import assert_documented


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six people with tiny pictures and one eval person: enough to reach training."""
    root = tmp_path_factory.mktemp("bad-input") / "data"
    return make_fixture(root, n_people=6, image_size=(16, 12), seed=0, n_eval_people=1)


@pytest.fixture
def data(layout: Path, tmp_path: Path) -> Path:
    """A private copy of the layout that a test may break."""
    return Path(shutil.copytree(layout, tmp_path / "data"))


@pytest.fixture
def make_cfg(tiny_base: Config) -> Callable[..., Config]:
    """``make_cfg(data, out, **changes)``: one step of one epoch on a layout of this module."""
    base = tiny_base.replace(epochs=1, batch_size=8, max_steps_per_epoch=1)

    def make(data: Path, out: Path, **changes) -> Config:
        return base.replace(data_dir=str(data), output_dir=str(out), **changes)

    return make


# ---- ways to break a layout ------------------------------------------------------------------


def _train_csv(data: Path) -> Path:
    return data / "train" / "train.csv"


def _meta(data: Path) -> pd.DataFrame:
    return pd.read_csv(_train_csv(data), dtype=str, keep_default_na=False)


def _folder(data: Path, i: int) -> Path:
    return data / "train" / "images" / _meta(data)["path"][i]


def _picture(data: Path, suffixes: tuple[str, ...] = (".jpg", ".jpeg")) -> Path:
    """A training picture of one of these formats (the fixture mixes extensions)."""
    frame = read_train(data)
    return Path(next(p for p in frame["path"] if Path(p).suffix.lower() in suffixes))


def _set_meta(data: Path, row: int, column: str, value: str) -> None:
    meta = _meta(data)
    meta.loc[row, column] = value
    meta.to_csv(_train_csv(data), index=False)


def _truncate(path: Path, keep: float = 0.5) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])


def _eval_picture(data: Path) -> Path:
    return Path(read_eval(data)["path"].iloc[0])


def _add_eval_row(data: Path, image_id: str) -> None:
    """One more row of info.csv, naming ``image_id`` (no such picture in eval/images)."""
    info = pd.read_csv(data / "eval" / "info.csv", dtype=str, keep_default_na=False)
    pd.concat([info, pd.DataFrame({"ImageID": [image_id], "ans": ["0"]})]).to_csv(
        data / "eval" / "info.csv", index=False
    )


#: case -> (break the layout, a fragment the message must hold)
BREAKS: dict[str, tuple[Callable[[Path], None], str]] = {
    "data folder missing": (lambda d: shutil.rmtree(d), "data folder not found"),
    "train.csv missing": (lambda d: _train_csv(d).unlink(), "train.csv: file not found"),
    "train.csv empty": (lambda d: _train_csv(d).write_text(""), "train.csv: file is empty"),
    "train.csv header only": (
        lambda d: _train_csv(d).write_text("id,gender,race,age,path\n"),
        "has a header but no rows",
    ),
    "train.csv column missing": (
        lambda d: _meta(d).drop(columns="age").to_csv(_train_csv(d), index=False),
        "missing column(s) age",
    ),
    "person folder missing": (lambda d: shutil.rmtree(_folder(d, 2)), "person folder not found"),
    "train images folder missing": (
        lambda d: shutil.rmtree(d / "train" / "images"),
        "images: folder not found (expected one sub-folder per person)",
    ),
    "person id empty": (
        lambda d: _set_meta(d, 0, "id", ""),
        "field 'id': found an empty id, expected a person id",
    ),
    "folder name empty": (
        lambda d: _set_meta(d, 1, "path", ""),
        "field 'path': found an empty path, expected a folder name",
    ),
    "picture missing": (
        lambda d: next(_folder(d, 1).glob("normal.*")).unlink(),
        "missing picture(s) normal",
    ),
    "extra picture": (
        lambda d: (_folder(d, 1) / "mask6.jpg").write_bytes(b"x"),
        "unexpected picture 'mask6'",
    ),
    "zero-byte picture": (lambda d: _picture(d).write_bytes(b""), "empty file (0 bytes)"),
    "truncated JPEG": (lambda d: _truncate(_picture(d)), "1 of 42 image files cannot be used"),
    "truncated PNG": (
        lambda d: _truncate(_picture(d, (".png",)), 0.9),
        "1 of 42 image files cannot be used",
    ),
    "not an image": (
        lambda d: _picture(d).write_text("<html>404</html>"),
        "not a readable image",
    ),
    "gender not male/female": (
        lambda d: _set_meta(d, 3, "gender", "F"),
        "field 'gender': found 'F', expected 'male' or 'female'",
    ),
    "age not an integer": (
        lambda d: _set_meta(d, 0, "age", "45.5"),
        "field 'age': found '45.5', expected a whole number",
    ),
    "age out of range": (lambda d: _set_meta(d, 0, "age", "130"), "expected an age 0..120"),
    "folder listed twice": (
        lambda d: _set_meta(d, 1, "path", _meta(d)["path"][0]),
        "is also listed on line(s)",
    ),
    "info.csv empty": (
        lambda d: (d / "eval" / "info.csv").write_text(""),
        "info.csv: file is empty",
    ),
    "info.csv column missing": (
        lambda d: (d / "eval" / "info.csv").write_text("image,ans\na.jpg,0\n"),
        "missing column(s) ImageID",
    ),
    "eval picture missing": (
        lambda d: _eval_picture(d).unlink(),
        "field 'ImageID': 1 of 7 images missing",
    ),
    "eval picture not there": (
        lambda d: _add_eval_row(d, "gone.jpg"),
        "field 'ImageID': 1 of 8 images missing",
    ),
    "eval id empty": (
        lambda d: _add_eval_row(d, ""),
        "field 'ImageID': found an empty value, expected an image file name",
    ),
    "eval picture truncated": (
        lambda d: _truncate(_eval_picture(d)),
        "1 of 7 image files cannot be used",
    ),
    "eval folder missing": (
        lambda d: shutil.rmtree(d / "eval" / "images"),
        "images: folder not found",
    ),
}


def _readers_message(data: Path) -> str:
    """What the data readers, called directly, say about ``data``."""
    with pytest.raises(DataError) as info:
        verify_images(read_train(data))
        verify_images(read_eval(data))
    return str(info.value)


@pytest.mark.parametrize("case", list(BREAKS))
def test_fit_stops_before_training_with_the_readers_message(
    make_cfg, case, data, tmp_path, monkeypatch
):
    breaker, fragment = BREAKS[case]
    breaker(data)
    expected = _readers_message(data)
    assert fragment in expected
    if case == "picture missing":  # the page's examples
        assert_documented("picture-missing", expected)
    if case == "gender not male/female":
        assert_documented("gender-invalid", expected)
    if case == "age out of range":
        assert_documented("age-out-of-range", expected)
    if case == "folder listed twice":
        assert_documented("folder-listed-twice", expected)
    if case == "eval folder missing":
        assert_documented("eval-images-missing", expected)
    if case == "train images folder missing":
        assert_documented("train-images-missing", expected)
    if case == "person id empty":
        assert_documented("person-id-empty", expected)
    if case == "folder name empty":
        assert_documented("path-empty", expected)
    if case == "eval picture not there":
        assert_documented("eval-image-missing", expected)
    if case == "eval id empty":
        assert_documented("eval-id-empty", expected)

    def no_training(*args, **kwargs):
        raise AssertionError("training started on bad data")

    monkeypatch.setattr(loop, "train_one_epoch", no_training)
    out = tmp_path / "runs"
    with pytest.raises(DataError) as info:
        fit(make_cfg(data, out))
    # the same message; a bad eval picture's fix is its own (the eval set is never thinned)
    assert str(info.value).split("; replace them")[0] == expected.split("; replace them")[0]
    assert not out.exists(), "a data error left a run folder behind"


def test_fixes_naming_unknown_people_or_bad_values_stop_fit(make_cfg, data, tmp_path):
    fixes = tmp_path / "fixes.csv"
    fixes.write_text("person_id,field,value,source\n999999,gender,male,me\n")
    with pytest.raises(
        DataError, match=r"1 label fix\(es\) name people not in the data: 999999"
    ) as err:
        fit(make_cfg(data, tmp_path / "runs", fixes=str(fixes)))
    assert_documented("fixes-unknown-person", str(err.value))
    fixes.write_text("person_id,field,value\n000001,age,old\n")
    with pytest.raises(DataError, match=r"fixes\.csv line 2, field 'value' \(age\): found 'old'"):
        fit(make_cfg(data, tmp_path / "runs", fixes=str(fixes)))


def test_strict_data_off_skips_bad_people_and_pictures_and_counts_them(make_cfg, data, tmp_path):
    broken = _picture(data)
    broken.write_bytes(b"")
    other = next(i for i, folder in enumerate(_meta(data)["path"]) if folder not in str(broken))
    _set_meta(data, other, "gender", "unknown")
    with pytest.raises(DataError):
        load_splits(make_cfg(data, tmp_path))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        splits = load_splits(make_cfg(data, tmp_path, strict_data=False))
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2, messages
    assert "read_train skipped 1 people (7 images)" in messages[0]
    assert_documented("people-skipped", messages[0])
    assert "field 'gender'" in messages[0]
    assert messages[1].startswith("verify_images dropped 1 of 35 image files")
    assert str(broken) in messages[1]
    used = pd.concat([splits.train, splits.val])
    assert len(used) == 6 * 7 - 7 - 1 and str(broken) not in set(used["path"])
    assert len(splits.eval) == 7  # the eval set is never thinned: a submission needs every row


def test_strict_data_off_refuses_a_train_csv_none_of_whose_people_can_be_read(
    make_cfg, data, tmp_path
):
    _set_meta(data, slice(None), "age", "old")
    with pytest.raises(DataError, match=r"none of its 6 people can be read: .*field 'age'") as err:
        read_train(data, strict=False)
    assert_documented("no-person-readable", str(err.value))
    with pytest.raises(DataError, match="none of its 6 people can be read"):
        fit(make_cfg(data, tmp_path / "runs", strict_data=False))


def test_strict_data_off_drops_an_unusable_picture_with_one_warning_that_counts_it(data):
    frame = read_train(data)
    Path(frame["path"][0]).write_bytes(b"")
    with pytest.warns(UserWarning, match="dropped 1 of 42 image files") as caught:
        kept = verify_images(frame, strict=False)
    assert len(caught) == 1
    assert_documented("images-dropped", str(caught[0].message))
    assert len(kept) == 41 and frame["path"][0] not in set(kept["path"])


def test_more_folds_than_people_are_refused_naming_n_folds(make_cfg, data, tmp_path):
    with pytest.raises(ValueError, match=r"6 people cannot fill 10 folds .*'n_folds'") as err:
        fit(make_cfg(data, tmp_path / "runs", fold=0, n_folds=10))
    assert_documented("folds-too-many", str(err.value))


def test_an_eval_folder_without_info_csv_is_trained_on_with_a_warning_of_no_submission(
    make_cfg, data, tmp_path, caplog
):
    (data / "eval" / "info.csv").unlink()
    with caplog.at_level(logging.WARNING, logger="kit"):
        splits = load_splits(make_cfg(data, tmp_path))
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1, warned
    assert_documented("eval-no-info", warned[0])
    assert str(data / "eval") in warned[0]
    assert splits.eval is None and len(splits.train) + len(splits.val) == 42


def test_a_bad_eval_picture_is_refused_even_without_strict_data(make_cfg, data, tmp_path):
    broken = Path(read_eval(data)["path"][0])
    broken.write_bytes(b"")
    with pytest.raises(DataError) as err:
        load_splits(make_cfg(data, tmp_path, strict_data=False))
    assert str(broken) in str(err.value)
    assert_documented("eval-picture-bad", str(err.value))


# ---- loading a picture that went bad after the check -----------------------------------------


def _encoded(fmt: str) -> bytes:
    import io

    buf = io.BytesIO()
    pixels = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format=fmt)
    return buf.getvalue()


CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "zero bytes": lambda p: p.write_bytes(b""),
    "cut-short JPEG": lambda p: p.write_bytes(_encoded("JPEG")[:300]),
    "cut-short PNG": lambda p: p.write_bytes(_encoded("PNG")[:-40]),
    "text": lambda p: p.write_text("not a picture"),
    "deleted": lambda p: p.unlink(),
}


@pytest.mark.parametrize("how", list(CORRUPTIONS))
def test_loading_a_bad_picture_names_the_file_and_the_fast_check_agrees(how, tmp_path):
    good = tmp_path / "good.jpg"
    good.write_bytes(_encoded("JPEG"))
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(_encoded("JPEG"))
    frame = pd.DataFrame({"path": [str(good), str(bad)], "label": [0, 1]})
    CORRUPTIONS[how](bad)
    with pytest.raises(OSError, match=rf"cannot read image {bad}: \w+") as err:
        load_rgb(str(bad))
    assert_documented("image-load", str(err.value))
    dataset = ImageDataset(frame, None)
    assert dataset[0][0].shape == (40, 30, 3)
    with pytest.raises(OSError, match=f"cannot read image {bad}"):
        dataset[1]
    with pytest.raises(OSError, match=f"cannot read image {bad}"):
        list(DataLoader(dataset, batch_size=2, num_workers=0, collate_fn=lambda b: b))
    # the fast pass run before training finds every file that loading would fail on
    with pytest.raises(DataError, match=rf"1 of 2 image files .*{bad}: "):
        verify_images(frame)


# ---- configuration: refused before any run folder exists -------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": "resnet_nope"}, r"config field 'model' is 'resnet_nope'"),
        ({"loss": "focall"}, r"config field 'loss': unknown loss 'focall'"),
        ({"preset": "medium"}, r"config field 'preset' is 'medium'"),
        ({"loss_kwargs": {"gama": 2}}, r"no loss in 'cross_entropy' accepts \['gama'\]"),
    ],
)
def test_bad_config_values_are_refused_before_a_run_folder_exists(
    make_cfg, data, tmp_path, changes, message
):
    out = tmp_path / "runs"
    with pytest.raises(ValueError, match=message):
        fit(make_cfg(data, out, **changes))
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: resnet_nope\n", r"config field 'model' is 'resnet_nope'"),
        ("epochs: ten\n", r"cfg\.yaml: config field 'epochs' got 'ten' \(str\); expected int"),
        ("modle: resnet18\n", r"cfg\.yaml: unknown config key 'modle' \(did you mean 'model'"),
        ("[1, 2]\n", r"cfg\.yaml: expected a mapping of config keys, got list"),
        ("model: [unclosed\n", r"cfg\.yaml: not valid YAML"),
    ],
)
def test_bad_config_files_name_the_file_and_field(make_cfg, data, tmp_path, text, message):
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    out = tmp_path / "runs"
    with pytest.raises(ValueError, match=message) as err:
        fit(parse_args(make_cfg(data, out), ["--config", str(path)]))
    assert not out.exists()
    if text == "epochs: ten\n":  # the page's examples
        assert_documented("config-wrong-type", str(err.value))
    if text == "[1, 2]\n":
        assert_documented("config-file-not-mapping", str(err.value))
    if text == "model: [unclosed\n":
        assert_documented("config-file-syntax", str(err.value))


def test_bad_command_line_values_are_refused_by_the_parser(make_cfg, data, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        parse_args(make_cfg(data, tmp_path), ["--image-size", "64"])
    assert info.value.code == 2 and "--image-size" in capsys.readouterr().err
    cfg = parse_args(make_cfg(data, tmp_path / "runs"), ["--preset", "medium"])
    with pytest.raises(ValueError, match=r"'preset' is 'medium'; valid: \['base'"):
        fit(cfg)


# ---- prediction files given to the ensembler ---------------------------------------------------

IDS = [f"{i:040x}.jpg" for i in range(12)]


def _run(root: Path, name: str, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    val = [f"p{i}/mask1" for i in range(10)]
    truth = np.arange(len(val))  # the same validation labels in every run
    guesses = rng.integers(0, 18, len(val))
    preds = Preds(
        val, truth, one_hot_probs(guesses, 0.6), IDS, one_hot_probs(rng.integers(0, 18, 12), 0.7)
    )
    return write_run(root, RunSpec(name=name, summary=summary(0.5), preds=preds))


def _rewrite_test_probs(run: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    frame = pd.read_csv(run / "test_probs.csv", dtype={"image_id": str})
    edit(frame).to_csv(run / "test_probs.csv", index=False)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda df: df.assign(p4=df.p4.where(df.index != 6, np.nan)),
            r"test_probs\.csv: line 8, field p4: found ''; expected a number",
        ),
        (
            lambda df: df.iloc[:-2],
            r"test rows differ between .*a \(12 rows\) and .*b \(10 rows\)",
        ),
        (
            lambda df: df.assign(image_id=[*IDS[:-1], "other.jpg"]),
            r"1 only in .*a, 1 only in .*b, e\.g\. 'other\.jpg'",
        ),
        (
            lambda df: df.drop(columns="p17"),
            r"test_probs\.csv: missing column\(s\) \['p17'\]",
        ),
        (
            lambda df: df.assign(p0=np.where(df.index == 0, 1.5, df.p0)),
            r"test_probs\.csv: line 2, field p0: found 1\.5; expected 0\.\.1",
        ),
        (lambda df: df.assign(p3="x"), r"line 2, field p3: found 'x'; expected a number"),
        (lambda df: df.assign(p3=1.5), r"line 2, field p3: found 1\.5; expected 0\.\.1"),
    ],
)
def test_bad_member_files_are_named(tmp_path, edit, message):
    a, b = _run(tmp_path, "a", 0), _run(tmp_path, "b", 1)
    _rewrite_test_probs(b, edit)
    with pytest.raises(ValueError, match=message) as info:
        ensemble([a, b])
    if "field p3: found 'x'" in message:  # the page's example
        assert_documented("probs-not-number", str(info.value))
    if "field p3: found 1" in message:  # the page's example
        assert_documented("probs-out-of-range", str(info.value))


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ([3] * 11 + [18], r"sub\.csv: line 13, field ans: found 18; expected a class id 0\.\.17"),
        ([3] * 11 + [-1], r"line 13, field ans: found -1;"),
        ([3] * 11 + [2.5], r"line 13, field ans: found 2\.5;"),
        ([3] * 11 + [None], r"line 13, field ans: found ''; expected a number"),
        ([18] * 12, r"sub\.csv: line 2, field ans: found 18; expected a class id 0\.\.17"),
    ],
)
def test_bad_submission_members_are_named(tmp_path, answers, message, capsys):
    a = _run(tmp_path, "a", 0)
    sub = tmp_path / "sub.csv"
    pd.DataFrame({"ImageID": IDS, "ans": answers}).to_csv(sub, index=False)
    with pytest.raises(ValueError, match=message) as info:
        ensemble([a, sub], method="hard")
    if answers == [18] * 12:  # the page's example
        assert_documented("class-id-invalid", str(info.value))
    assert ensemble_main([str(a), str(sub), "--method", "hard"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "sub.csv" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        (None, FileNotFoundError, r"sub\.csv: not found; expected a run folder or"),
        ("", ValueError, r"sub\.csv: not a readable CSV"),
        ("ImageID,ans\n", ValueError, r"sub\.csv: no rows; expected one row"),
        (
            "ImageID,ans\n" + "".join(f"{i},1\n" for i in ["", *IDS[1:]]),
            ValueError,
            r"sub\.csv: line 2, field ImageID: empty; expected an image id",
        ),
        (
            "ImageID,ans\n" + "".join(f"{i},1\n" for i in [IDS[0], *IDS[:-1]]),
            ValueError,
            rf"sub\.csv: line 3, field ImageID: '{IDS[0]}' appears more than once",
        ),
    ],
    ids=["missing", "empty-file", "header-only", "empty-id", "id-twice"],
)
def test_a_missing_or_broken_submission_member_is_refused_naming_file_and_line(
    tmp_path, text, error, message, capsys
):
    a = _run(tmp_path, "a", 0)
    sub = tmp_path / "sub.csv"
    if text is not None:
        sub.write_text(text)
    with pytest.raises(error, match=message) as info:
        ensemble([a, sub], method="hard")
    seen = str(info.value)
    if text is None:
        assert_documented("member-missing", seen)
    elif text == "":
        assert_documented("csv-unreadable", seen)
    elif text == "ImageID,ans\n":
        assert_documented("csv-no-rows", seen)
    elif "empty" in message:
        assert_documented("id-empty", seen)
    else:
        assert_documented("id-twice", seen)
    assert ensemble_main([str(a), str(sub), "--method", "hard"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "sub.csv" in err and "Traceback" not in err


def test_submission_with_the_wrong_rows_is_refused_against_info_csv(tmp_path):
    a = _run(tmp_path, "a", 0)
    info = tmp_path / "info.csv"
    pd.DataFrame({"ImageID": IDS[:-1], "ans": 0}).to_csv(info, index=False)
    with pytest.raises(ValueError, match=r"test rows differ .*info\.csv \(11 rows\)"):
        ensemble([a], info=info)


# ---- pictures and names as phones and other systems write them -------------------------------


def _motion_photo(progressive: bool) -> tuple[bytes, bytes]:
    """(a JPEG, the same with a "video" appended after its end, as a phone's motion photo)."""
    import io

    buf = io.BytesIO()
    pixels = np.random.default_rng(2).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format="JPEG", progressive=progressive, exif=_exif())
    video = np.random.default_rng(3).bytes(200_000).replace(b"\xff\xd9", b"\xff\x00")
    assert b"\xff\xd9" not in video
    return buf.getvalue(), buf.getvalue() + b"\x00\x00\x00\x18ftypmp42" + video


def _exif() -> bytes:
    """EXIF with an orientation tag, so the picture has an APP1 segment to walk over."""
    exif = Image.Exif()
    exif[0x0112] = 1
    return exif.tobytes()


@pytest.mark.parametrize("progressive", [False, True], ids=["baseline", "progressive"])
def test_a_jpeg_with_bytes_after_its_end_decodes_as_a_viewer_shows_it(tmp_path, progressive):
    plain, motion = _motion_photo(progressive)
    (tmp_path / "plain.jpg").write_bytes(plain)
    (tmp_path / "motion.jpg").write_bytes(motion)
    frame = pd.DataFrame({"path": [str(tmp_path / "motion.jpg")]})
    assert len(verify_images(frame, decode=True)) == 1
    np.testing.assert_array_equal(
        load_rgb(str(tmp_path / "motion.jpg")), load_rgb(str(tmp_path / "plain.jpg"))
    )
    # the same picture cut short anywhere is still refused, with or without what follows
    for cut in (len(plain) // 3, len(plain) // 2, len(plain) - 2):
        (tmp_path / "cut.jpg").write_bytes(plain[:cut])
        with pytest.raises(DataError, match="truncated JPEG file|not a readable image"):
            verify_images(pd.DataFrame({"path": [str(tmp_path / "cut.jpg")]}))


def _rename_nfd(data: Path, row: int, name: str) -> tuple[str, str]:
    """Person ``row``'s folder renamed to ``name`` decomposed (NFD, as macOS writes it), its
    train.csv row naming it composed (NFC, as a spreadsheet writes it)."""
    import unicodedata

    nfc, nfd = unicodedata.normalize("NFC", name), unicodedata.normalize("NFD", name)
    assert nfc != nfd
    _folder(data, row).rename(data / "train" / "images" / nfd)
    _set_meta(data, row, "path", nfc)
    return nfc, nfd


def test_a_person_folder_named_in_nfd_is_matched_to_its_nfc_row(data):
    nfc, nfd = _rename_nfd(data, 0, "000001_female_Asian_45_Zoë_Åström")
    frame = read_train(data)
    rows = frame[frame["folder"] == nfc]
    assert len(rows) == 7 and len(frame) == 6 * 7
    assert all(Path(p).parent.name == nfd and Path(p).is_file() for p in rows["path"])
    assert rows["image_id"].str.startswith(f"{nfc}/").all()  # ids follow train.csv


def test_folders_that_differ_only_in_normalisation_are_named(data):
    """'Å' composed (U+00C5) in train.csv; on disk the decomposed A + ring and the Angstrom
    sign U+212B: both read the same, so neither is guessed."""
    _, nfd = _rename_nfd(data, 0, "p_\u00c5")
    shutil.copytree(data / "train" / "images" / nfd, data / "train" / "images" / "p_\u212b")
    with pytest.raises(DataError, match="differ only in Unicode normalisation") as err:
        read_train(data)
    assert_documented("person-folder-normalisation", str(err.value))


def test_an_eval_picture_named_in_nfd_is_matched_to_its_nfc_row(data):
    import unicodedata

    info = pd.read_csv(data / "eval" / "info.csv", dtype=str)
    picture = _eval_picture(data)
    name = "Zoë" + picture.suffix
    picture.rename(picture.with_name(unicodedata.normalize("NFD", name)))
    info.loc[0, "ImageID"] = unicodedata.normalize("NFC", name)
    info.to_csv(data / "eval" / "info.csv", index=False)
    frame = read_eval(data)
    assert frame["ImageID"].iloc[0] == unicodedata.normalize("NFC", name)
    assert Path(frame["path"].iloc[0]).is_file()
