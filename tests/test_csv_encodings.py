"""Every CSV kit reads accepts what spreadsheets write: a byte-order mark (Excel's "CSV UTF-8"),
UTF-16 with its mark, CRLF line ends, ``;`` separators (with decimal commas); a file in another
encoding is refused with one message naming the file, the line and the fix.

Each reader in :data:`READERS` is given a file it reads, re-saved in every such way, and must read
the same thing back; ``test_every_csv_reader_is_listed`` fails when a module of kit calls
``pd.read_csv`` or ``csv.reader`` on a path instead of going through :func:`kit.io.read_csv_text`.
"""

from __future__ import annotations

import codecs
import contextlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from kit.data import read_eval, read_train
from kit.data.fixes import load_fixes
from kit.data.fixture import make_fixture
from kit.faces import read_boxes
from kit.predict import read_inputs
from kit.runfolder import kfold
from kit.runfolder.read import (
    probs_task,
    read_metrics,
    read_pseudo_labels,
    read_submission,
    read_task_val_probs,
    read_test_probs,
    read_val_keys,
    read_val_probs,
)
from tests._runfolders import Preds, RunSpec, one_hot_probs, summary, write_run
from tests._triggers import assert_documented

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny data folder and a run folder with every file a reader of run folders reads."""
    root = tmp_path_factory.mktemp("csv-encodings")
    make_fixture(root / "data", n_people=3, image_size=(12, 16), seed=0, n_eval_people=1)
    ids = [f"p{i}/mask1" for i in range(4)]
    preds = Preds(
        ids,
        np.arange(4),
        one_hot_probs(np.arange(4)),
        test_ids=ids,
        test_probs=one_hot_probs([1] * 4),
    )
    run = write_run(
        root,
        RunSpec(name="m", summary=summary(0.5), preds=preds, metrics=[{"epoch": 1, "val_f1": 0.5}]),
    )
    run.rename(root / "run")
    pseudo = "image_id,label,p_top\na.jpg,3,0.9\nb.jpg,4,0.8\n"
    (root / "run" / "pseudo_labels.csv").write_text(pseudo)
    (root / "run" / "age_probs.csv").write_text(
        "image_id,person_id,label,fold,age0,age1,age2\na,p,1,0,0.2,0.7,0.1\n"
    )
    (root / "sub.csv").write_text("ImageID,ans\na.jpg,3\nb.jpg,17\n")
    (root / "fixes.csv").write_text("person_id,field,value\n000001,gender,female\n")
    pictures = sorted((root / "data" / "eval" / "images").iterdir())[:2]
    (root / "paths.csv").write_text("path,ImageID\n" + "".join(f"{p},{p.name}\n" for p in pictures))
    return root


@dataclass(frozen=True)
class Reader:
    file: str  # the CSV, relative to the world
    read: Callable[[Path], Any]  # the world (or a copy of it) -> what the reader returns


VAL, AGE = "run/val_probs.csv", "run/age_probs.csv"
#: every CSV kit reads -> how to read it
READERS: dict[str, Reader] = {
    "train.csv": Reader("data/train/train.csv", lambda w: read_train(w / "data")),
    "info.csv": Reader("data/eval/info.csv", lambda w: read_eval(w / "data")),
    "face boxes": Reader("data/train/faces.csv", lambda w: read_boxes(w / "data/train/faces.csv")),
    "fixes": Reader("fixes.csv", lambda w: load_fixes(w / "fixes.csv")),
    "submission / answers": Reader("sub.csv", lambda w: read_submission(w / "sub.csv")),
    "val_probs": Reader("run/val_probs.csv", lambda w: read_val_probs(w / "run/val_probs.csv")),
    "test_probs": Reader("run/test_probs.csv", lambda w: read_test_probs(w / "run/test_probs.csv")),
    "out-of-fold keys": Reader(
        "run/val_probs.csv", lambda w: read_val_keys(w / "run/val_probs.csv")
    ),
    "fold files": Reader("run/val_probs.csv", lambda w: kfold._read(w / "run/val_probs.csv")),
    "one task's probabilities": Reader(
        "run/age_probs.csv",
        lambda w: (
            probs_task(w / "run/age_probs.csv"),
            read_task_val_probs(w / "run/age_probs.csv", "age"),
        ),
    ),
    "pseudo labels": Reader("run/pseudo_labels.csv", lambda w: read_pseudo_labels(w / "run")),
    "metrics": Reader("run/metrics.csv", lambda w: read_metrics(w / "run")),
    "predict's CSV of paths": Reader("paths.csv", lambda w: read_inputs(w / "paths.csv")),
}

#: how a spreadsheet or an editor may save a CSV's text
SAVED_AS: dict[str, Callable[[str], bytes]] = {
    "Excel CSV UTF-8 (BOM)": lambda t: t.encode("utf-8-sig"),
    "UTF-16 LE with BOM": lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"),
    "UTF-16 BE with BOM": lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"),
    "CRLF line ends": lambda t: t.replace("\n", "\r\n").encode(),
    "semicolons": lambda t: t.replace(",", ";").encode(),
    "Excel, European": lambda t: t.replace(",", ";").replace("\n", "\r\n").encode("utf-8-sig"),
    "UTF-16, tabs, CRLF": lambda t: t.replace(",", "\t").replace("\n", "\r\n").encode("utf-16"),
    # German or French Excel: ';' separators because ',' is the decimal mark (0,5)
    "Excel, decimal commas": lambda t: (
        re.sub(r"(?<=\d)\.(?=\d)", ",", t.replace(",", ";"))
        .replace("\n", "\r\n")
        .encode("utf-8-sig")
    ),
}


def _same(a: Any, b: Any) -> None:
    if is_dataclass(a):
        _same([getattr(a, f.name) for f in fields(a)], [getattr(b, f.name) for f in fields(b)])
    elif isinstance(a, tuple | list):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _same(x, y)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        _same(list(a.values()), list(b.values()))
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    elif isinstance(a, np.ndarray):
        np.testing.assert_array_equal(a, b)
    else:
        assert a == b


@contextlib.contextmanager
def _saved(path: Path, encode: Callable[[str], bytes]) -> Iterator[None]:
    """``path`` re-saved as ``encode`` makes it, inside; as it was, after (the world is shared
    by this module's tests: copying it for each would cost more than all the reads)."""
    before = path.read_bytes()
    path.write_bytes(encode(before.decode("utf-8")))
    try:
        yield
    finally:
        path.write_bytes(before)


@pytest.mark.parametrize("how", list(SAVED_AS))
@pytest.mark.parametrize("reader", list(READERS))
def test_every_csv_reader_reads_what_spreadsheets_write(world, reader, how):
    spec = READERS[reader]
    want = spec.read(world)
    with _saved(world / spec.file, SAVED_AS[how]):
        _same(want, spec.read(world))


#: how a file that is no text kit reads may look, and what its message says
NOT_TEXT: dict[str, tuple[Callable[[str], bytes], str]] = {
    "Windows-1252": (
        lambda t: (t + "é\n").encode("cp1252"),
        r"line \d+: byte b'\\xe9' is not UTF-8",
    ),
    "UTF-16 without BOM": (lambda t: t.encode("utf-16-le"), "NUL bytes"),
}


@pytest.mark.parametrize("how", list(NOT_TEXT))
@pytest.mark.parametrize("reader", list(READERS))
def test_a_csv_in_another_encoding_is_named_with_its_line_and_the_fix(world, reader, how):
    spec = READERS[reader]
    encode, message = NOT_TEXT[how]
    with _saved(world / spec.file, encode), pytest.raises(ValueError, match=message) as err:
        spec.read(world)
    assert str(world / spec.file) in str(err.value)
    assert 'save it as "CSV UTF-8"' in str(err.value)
    if reader == "train.csv" and how == "UTF-16 without BOM":  # the page's example
        assert_documented("csv-utf16-no-bom", str(err.value))


def test_every_csv_reader_is_listed():
    """No module of kit reads a CSV file by itself: each goes through kit.io.read_csv_text (the
    one decoder of byte-order marks and separators) or a reader of READERS."""
    direct = re.compile(r"pd\.read_csv\((?!\*\*)|csv\.(reader|DictReader)\((?!(io\.)?StringIO)")
    found = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "kit").rglob("*.py")
        if direct.search(p.read_text(encoding="utf-8"))
    )
    # the fixture command counts the rows of the files it has just written itself
    assert found == ["kit/data/fixture.py"]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("a.jpg,1,2,inf,4", "line 3, field x1: found 'inf'; expected a finite number"),
        ("a.jpg,nan,2,3,4", "line 3, field x0: found 'nan'"),
        ("a.jpg,1,2,3,1e999", "line 3, field y1: found '1e999'"),
        ("a.jpg,1,2", "line 3: found 3 fields, expected 5"),
        ("a.jpg,1,,3,4", "line 3, field y0: found ''"),
    ],
)
def test_a_bad_face_box_names_file_row_field_and_the_fix(tmp_path, row, message):
    bad = tmp_path / "faces.csv"
    bad.write_text(f"image_id,x0,y0,x1,y1\nb.jpg,1,2,3,4\n{row}\n")
    with pytest.raises(ValueError, match=re.escape(message)) as err:
        read_boxes(bad)
    assert str(bad) in str(err.value) and "all empty" in str(err.value)


def test_face_boxes_with_decimal_commas_read_as_numbers(tmp_path):
    """A boxes file a German Excel saved: ';' separators and decimal commas."""
    boxes = tmp_path / "faces.csv"
    boxes.write_text("image_id;x0;y0;x1;y1\r\na.jpg;1,4;2;30,6;40,5\r\nb.jpg;;;;\r\n")
    assert read_boxes(boxes) == {"a.jpg": (1, 2, 31, 40), "b.jpg": None}


@pytest.mark.parametrize(
    ("text", "mark"),
    [
        ("a;b\n0,5;x\n", ","),
        ("a;b\n-1,5e-3;x\n", ","),
        ("a;b\n0.5;x\n", "."),  # ';' with decimal points (some exports): no comma to read
        ("a;b\nx,1;2\n", "."),  # a comma inside a text field is no decimal mark
        ("a,b\n0,5\n", "."),  # ',' separators: a comma separates
    ],
)
def test_the_decimal_mark_follows_the_fields_of_a_semicolon_file(text, mark):
    from kit.io import decimal_mark

    assert decimal_mark(text, ";" if ";" in text else ",") == mark
