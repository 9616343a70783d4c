"""Label fixes: the built-in list, loading and overriding, applying to a per-image frame."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from kit.data import BUILTIN_FIXES, DataError, Fix, apply_fixes, load_fixes, read_train
from tests._layout_helpers import age_group, real_meta, write_train
from tests._triggers import assert_documented

# domain.md, "Known label errors that teams corrected", typed out independently.
DOMAIN_FIXES = {
    **{(p, "swap_mask"): "1" for p in ("000020", "004418", "005227")},
    **{(f"00636{k}", "gender"): "male" for k in range(4)},
    **{(f"00635{k}", "gender"): "male" for k in (9,)},
    **{(p, "gender"): "male" for p in ("006364", "001720")},
    **{(p, "gender"): "female" for p in ("001498-1", "004432", "005223")},
    **{(p, "age"): "29" for p in ("001009", "001064", "001637", "001666", "001852")},
    ("004348", "age"): "61",
}
MASK_OF = {"incorrect_mask": 1, "normal": 2}


def test_builtin_fixes_are_the_documented_ones() -> None:
    assert len(DOMAIN_FIXES) == 19
    assert {(f.person_id, f.field): f.value for f in BUILTIN_FIXES} == DOMAIN_FIXES
    assert len(BUILTIN_FIXES) == 19
    for fix in BUILTIN_FIXES:
        assert "2021/2022" in fix.source and "docs/data.md" in fix.source
    with pytest.raises(AttributeError):
        BUILTIN_FIXES[0].value = "0"  # type: ignore[misc]


def test_load_fixes_specs(tmp_path: Path) -> None:
    assert load_fixes(None) == []
    assert load_fixes("builtin") == list(BUILTIN_FIXES)
    user = tmp_path / "mine.csv"
    user.write_text(
        "person_id,field,value,source\n"
        "004348,age,59,I checked the photos\n"
        "000020,swap_mask,0,\n"
        "123456,gender, Female ,\n"
    )
    mine = load_fixes(user)
    assert [(f.person_id, f.field, f.value) for f in mine] == [
        ("004348", "age", "59"),
        ("000020", "swap_mask", "0"),
        ("123456", "gender", "female"),
    ]
    assert mine[0].source == "I checked the photos"
    assert mine[1].source == f"{user} line 3"  # empty source: the file and line
    merged = load_fixes(["builtin", str(user)])
    assert len(merged) == 20
    by_key = {(f.person_id, f.field): f for f in merged}
    assert by_key[("004348", "age")].value == "59"
    assert by_key[("004348", "age")].source == "I checked the photos"
    assert by_key[("000020", "swap_mask")].value == "0"
    assert by_key[("001009", "age")] in BUILTIN_FIXES
    # The other order: the builtin list wins.
    assert {(f.person_id, f.field): f.value for f in load_fixes([user, "builtin"])}[
        ("004348", "age")
    ] == "61"
    assert load_fixes(Fix("1", "age", "040", "me")) == [Fix("1", "age", "40", "me")]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("person_id,value\n1,2\n", r"missing column\(s\) field"),
        ("person_id,field,value\n1,age,3\n1,weight,70\n", r"line 3, field 'field': found 'weight'"),
        ("person_id,field,value\n1,gender,m\n", r"line 2, field 'value' \(gender\): found 'm'"),
        ("person_id,field,value\n1,age,x\n", r"line 2, field 'value' \(age\): found 'x'"),
        ("person_id,field,value\n1,age,121\n", r"line 2, field 'value' \(age\): found 121"),
        ("person_id,field,value\n1,swap_mask,maybe\n", r"line 2, field 'value' \(swap_mask\)"),
        ("person_id,field,value\n,age,30\n", r"line 2, field 'person_id': found an empty id"),
    ],
)
def test_invalid_fix_files(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=rf"bad\.csv.*{expected}") as err:
        load_fixes(["builtin", path])
    if "weight" in text:  # the page's examples
        assert_documented("fixes-field", str(err.value))
    if "gender,m" in text:
        assert_documented("fixes-value", str(err.value))
    if "maybe" in text:
        assert_documented("fixes-swap-value", str(err.value))
    if text.endswith("\n,age,30\n"):
        assert_documented("fixes-person-empty", str(err.value))


def test_unknown_spec(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"'buitlin': expected 'builtin' or a CSV file") as err:
        load_fixes("buitlin")
    assert_documented("fixes-spec", str(err.value))
    with pytest.raises(DataError, match="nothere.csv"):
        load_fixes(tmp_path / "nothere.csv")


PEOPLE = ["000020", "005223", "001009", "004348", "006359", "000001"]


@pytest.fixture
def frame(tmp_path: Path) -> pd.DataFrame:
    meta = real_meta()
    return read_train(write_train(tmp_path, meta[meta["id"].isin(PEOPLE)]))


def _expected_after_fixes(before: pd.DataFrame) -> pd.DataFrame:
    """The frame with the builtin fixes of PEOPLE applied, by hand."""
    want = before.copy()
    swap = (want["person_id"] == "000020") & want["stem"].isin(MASK_OF)
    want.loc[swap, "mask"] = want.loc[swap, "stem"].map({"incorrect_mask": 2, "normal": 1})
    want.loc[want["person_id"] == "005223", "gender"] = 1
    want.loc[want["person_id"] == "006359", "gender"] = 0
    want.loc[want["person_id"] == "001009", "age"] = 29
    want.loc[want["person_id"] == "004348", "age"] = 61
    want["age_group"] = [age_group(a) for a in want["age"]]
    want["label"] = want["mask"] * 6 + want["gender"] * 3 + want["age_group"]
    return want


def test_apply_fixes(frame: pd.DataFrame) -> None:
    fixes = [f for f in BUILTIN_FIXES if f.person_id in PEOPLE]
    fixed, report = apply_fixes(frame, fixes)
    want = _expected_after_fixes(frame)
    for col in frame.columns:
        assert fixed[col].tolist() == want[col].tolist(), col
    assert frame["age"].tolist() != fixed["age"].tolist()  # the input is not modified
    assert report.count == 5
    assert report.ids == ["000020", "001009", "004348", "005223", "006359"]
    # This copy of train.csv already lists 006359 as male.
    assert [f.person_id for f in report.unchanged] == ["006359"]
    assert str(report) == (
        "applied 5 label fixes to 5 people: 000020, 001009, 004348, 005223, 006359; "
        "1 already in place: 006359"
    )
    again, second = apply_fixes(fixed, fixes)  # applying twice changes nothing more
    assert again.equals(fixed)
    assert len(second.unchanged) == 5


def test_missing_people_strict_and_not(frame: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"14 label fix\(es\) name people not in the data: 004418"):
        apply_fixes(frame, BUILTIN_FIXES)
    with pytest.warns(UserWarning, match="14 label fix"):
        fixed, report = apply_fixes(frame, BUILTIN_FIXES, strict=False)
    assert report.count == 5 and len(report.missing) == 14
    assert fixed["label"].tolist() == _expected_after_fixes(frame)["label"].tolist()
    assert "14 for people not in the data" in str(report)


def test_a_fix_for_a_person_not_in_the_data_is_skipped_with_a_warning_naming_it(
    frame: pd.DataFrame, tmp_path: Path
) -> None:
    fixes = tmp_path / "fixes.csv"
    fixes.write_text("person_id,field,value\n999999,age,30\n")
    with pytest.warns(UserWarning, match=r"1 label fix\(es\) name people not in") as caught:
        got = read_train(tmp_path, fixes=fixes, strict=False)
    (warning,) = [str(w.message) for w in caught if "label fix" in str(w.message)]
    assert f"999999 (age=30, from {fixes}" in warning
    assert_documented("fixes-skipped", warning)
    assert got["label"].tolist() == frame["label"].tolist()


def test_cancelling_a_builtin_swap(frame: pd.DataFrame, tmp_path: Path) -> None:
    user = tmp_path / "mine.csv"
    user.write_text("person_id,field,value\n000020,swap_mask,0\n")
    fixes = [f for f in load_fixes(["builtin", user]) if f.person_id == "000020"]
    fixed, report = apply_fixes(frame, fixes)
    assert fixed["mask"].tolist() == frame["mask"].tolist()
    assert report.unchanged == fixes


def test_read_train_with_fixes(
    tmp_path: Path, frame: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    root = tmp_path  # the fixture wrote the layout here
    with caplog.at_level(logging.INFO, logger="kit"), pytest.warns(UserWarning, match="14 label"):
        got = read_train(root, fixes="builtin", strict=False)
    assert got["label"].tolist() == _expected_after_fixes(frame)["label"].tolist()
    assert any("applied 5 label fixes to 5 people" in r.getMessage() for r in caplog.records)
    records = got.attrs["fixes"]
    assert [(r["person_id"], r["field"], r["changed"]) for r in records] == [
        ("000020", "swap_mask", True),
        ("006359", "gender", False),
        ("005223", "gender", True),
        ("001009", "age", True),
        ("004348", "age", True),
    ]
    assert read_train(root).attrs.get("fixes") is None
    with pytest.raises(DataError, match="name people not in the data"):
        read_train(root, fixes="builtin")


def test_all_builtin_fixes_on_the_real_people(tmp_path: Path) -> None:
    meta = real_meta()
    ids = {f.person_id for f in BUILTIN_FIXES}
    meta = meta[meta["id"].isin(ids)]
    got = read_train(write_train(tmp_path, meta, content=lambda ext: b""), fixes="builtin")
    by_id = meta.set_index("id")
    # Which fixes this copy of train.csv already contains, read from the CSV itself.
    already = {
        f.person_id
        for f in BUILTIN_FIXES
        if f.field in ("gender", "age") and by_id.loc[f.person_id, f.field] == f.value
    }
    records = got.attrs["fixes"]
    assert len(records) == 19
    assert {r["person_id"] for r in records if not r["changed"]} == already
