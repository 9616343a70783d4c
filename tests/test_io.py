import errno
import os
import stat

import numpy as np
import pytest

from kit.io import OutputError, atomic_path, read_json, write_json, write_text
from tests._triggers import assert_documented


def test_write_then_replace(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    write_text(target, "one")
    write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_failure_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]


def test_json_round_trip_with_numpy(tmp_path):
    path = write_json(tmp_path / "x.json", {"a": np.int64(3), "b": np.arange(3), "p": tmp_path})
    assert read_json(path) == {"a": 3, "b": [0, 1, 2], "p": str(tmp_path)}


def test_read_json_names_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ValueError, match="bad.json"):
        read_json(bad)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_json(tmp_path / "missing.json")


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (errno.EROFS, "read-only"),
        (errno.ENOSPC, "disk is full"),
        (errno.EACCES, "permission denied"),
        (errno.EDQUOT, "disk quota is exhausted"),
    ],
)
def test_os_errors_are_explained_and_nothing_is_replaced(tmp_path, monkeypatch, code, reason):
    # Root ignores permissions here, so the OS error is injected where the rename happens.
    target = tmp_path / "a.txt"
    write_text(target, "old")

    def failing_replace(src, dst):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("kit.io.os.replace", failing_replace)
    with pytest.raises(OutputError, match=reason) as err:
        write_text(target, "new")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    if code == errno.EROFS:  # the page's examples
        assert_documented("output-read-only", str(err.value))
    if code == errno.EACCES:
        assert_documented("output-permission", str(err.value))
    if code == errno.EDQUOT:
        assert_documented("output-quota", str(err.value))


def test_unwritable_target_gives_a_clear_error(tmp_path):
    # A regular file where a folder is expected fails for root too.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match=r"cannot write .*file/run/a.txt"):
        write_text(blocker / "run" / "a.txt", "x")


def test_input_errors_inside_the_block_keep_their_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="input.jpg"), atomic_path(tmp_path / "out") as _:
        open(tmp_path / "input.jpg")  # noqa: SIM115 - the error is the point
    assert list(tmp_path.iterdir()) == []


def test_disk_full_while_writing_is_explained(tmp_path):
    with (
        pytest.raises(OutputError, match="disk is full") as err,
        atomic_path(tmp_path / "out") as _,
    ):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []
    assert_documented("output-disk-full", str(err.value))


def test_files_get_the_usual_permissions(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic = write_text(tmp_path / "atomic.txt", "x")
    assert stat.S_IMODE(atomic.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
