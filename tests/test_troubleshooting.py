"""docs/troubleshooting.md lists every message a user can meet; each row is produced by a test.

Every row of the page's tables has an id and a message excerpt. A row is claimed where a test
provokes its message the way a user would: the test of the module that produces it calls
``assert_documented(<row id>, <the text the user sees>)`` (tests/_triggers.py), or ``TRIGGERS``
here maps the id to a small function that provokes it and returns that text. The page and the
claims name the same ids, so neither can drift from the code.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import kit.runfolder as rundir
from kit import io as kio
from kit.config import Config
from kit.data import read_train
from kit.data.fixture import make_fixture
from tests._runfolders import Preds, RunSpec, one_hot_probs, summary, write_run
from tests._triggers import assert_documented, documented

ROOT = Path(__file__).resolve().parents[1]


# ---- how a trigger sees the world -----------------------------------------------------------


@dataclass
class Ctx:
    """What a trigger may use: a private folder, monkeypatch, and the shared tiny layout."""

    tmp: Path
    layout: Path  # never modified: copy it with data()
    mp: pytest.MonkeyPatch

    def data(self) -> Path:
        """A private copy of the tiny layout (6 people, 1 eval person) that may be broken."""
        target = self.tmp / "data"
        if not target.exists():
            shutil.copytree(self.layout, target)
        return target

    def cfg(self, **changes) -> Config:
        """A seconds-long CPU run on the private layout, writing under tmp/runs."""
        base = Config(
            data_dir=str(self.data()),
            output_dir=str(self.tmp / "runs"),
            model="test_resnet",
            image_size=(32, 24),
            epochs=1,
            batch_size=8,
            max_steps_per_epoch=1,
            workers=0,
            device="cpu",
            quiet=True,
        )
        return base.replace(**changes)


# ---- helpers that break things ----------------------------------------------------------------


def _train_csv(ctx: Ctx) -> Path:
    return ctx.data() / "train" / "train.csv"


def _edit_meta(ctx: Ctx, row: int, column: str, value: str) -> Path:
    meta = pd.read_csv(_train_csv(ctx), dtype=str, keep_default_na=False)
    meta.loc[row, column] = value
    meta.to_csv(_train_csv(ctx), index=False)
    return ctx.data()


def _folder(ctx: Ctx, row: int = 0) -> Path:
    meta = pd.read_csv(_train_csv(ctx), dtype=str, keep_default_na=False)
    return ctx.data() / "train" / "images" / meta["path"][row]


def _one(folder: Path, stem: str) -> Path:
    (path,) = folder.glob(f"{stem}.*")
    return path


def _bad_picture(ctx: Ctx, content: bytes) -> pd.DataFrame:
    frame = read_train(ctx.data())
    Path(frame["path"][0]).write_bytes(content)
    return frame


def _fixes(ctx: Ctx, text: str) -> Path:
    path = ctx.tmp / "fixes.csv"
    path.write_text(text)
    return path


def _file(ctx: Ctx, name: str, text: str) -> Path:
    path = ctx.tmp / name
    path.write_text(text)
    return path


def _fake_run(ctx: Ctx, cfg: Config) -> Path:
    """A run folder with a config and an unreadable last.pt (a copy cut short, say)."""
    run = ctx.tmp / "old-run"
    run.mkdir()
    kio.write_json(run / "config.json", cfg.to_dict())
    (run / "last.pt").write_bytes(b"not a checkpoint")
    return run


IDS = [f"{i:040x}.jpg" for i in range(6)]
VAL = [f"p{i}/mask1" for i in range(8)]


def _member(ctx: Ctx, name: str, seed: int = 0, val: list[str] = VAL, **spec) -> Path:
    rng = np.random.default_rng(seed)
    truth = np.arange(len(val)) % 18
    preds = Preds(
        val,
        truth,
        one_hot_probs(rng.integers(0, 18, len(val)), 0.6),
        IDS,
        one_hot_probs(rng.integers(0, 18, len(IDS)), 0.7),
    )
    return write_run(ctx.tmp, RunSpec(name=name, summary=summary(0.5), preds=preds, **spec))


def _edit_csv(path: Path, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Path:
    frame = pd.read_csv(path, dtype={"image_id": str, "person_id": str, "ImageID": str})
    edit(frame).to_csv(path, index=False)
    return path


def _sub(ctx: Ctx, answers: list, ids: list[str] = IDS, name: str = "sub.csv") -> Path:
    path = ctx.tmp / name
    pd.DataFrame({"ImageID": ids, "ans": answers}).to_csv(path, index=False)
    return path


def _no_val_rows_in_common(ctx: Ctx) -> list[Path]:
    return [_member(ctx, "a"), _member(ctx, "b", 1, val=[f"q{i}/mask1" for i in range(8)])]


# ---- the registry: id -> trigger ----------------------------------------------------------------

Trigger = Callable[[Ctx], str]
TRIGGERS: dict[str, Trigger] = {}


def _twice(ctx: Ctx) -> Path:
    """A folder of two runs both named ``a`` (the same run trained again)."""
    _member(ctx, "a")
    return _member(ctx, "a", stamp="20240102-120000").parent


def _unlink(path: Path) -> Path:
    path.unlink()
    return path


def _killed_run(ctx: Ctx) -> Path:
    """A run folder whose status.json says running, written by a process that has ended."""
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    run = write_run(ctx.tmp / "runs", RunSpec(name="killed", status="running"))
    status = {
        "status": "running",
        "epoch": 1,
        "updated": rundir.now(),
        "pid": int(ended.stdout),
        "host": socket.gethostname(),
    }
    (run / "status.json").write_text(json.dumps(status))
    return run


# ---- the tests --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("troubleshooting") / "data"
    return make_fixture(root, n_people=6, image_size=(16, 12), seed=0, n_eval_people=1)


#: A call of ``assert_documented`` with a row's id in a test file: the row is claimed there.
_CLAIM = re.compile(r"""assert_documented\(\s*["']([a-z0-9-]+)["']""")


def claimed_in_module_tests() -> dict[str, list[str]]:
    """id -> the test files that claim the row with :func:`assert_documented`."""
    claims: dict[str, list[str]] = {}
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for row in _CLAIM.findall(path.read_text(encoding="utf-8")):
            claims.setdefault(row, []).append(path.name)
    return claims


def test_every_row_is_claimed_once_by_a_module_test_or_a_trigger():
    rows, claims = documented(), claimed_in_module_tests()
    assert len(rows) >= 60
    assert sorted(set(claims) - set(rows)) == [], "claimed by a test, but not on the page"
    assert sorted(set(TRIGGERS) - set(rows)) == [], "triggered but not documented"
    assert sorted(set(claims) & set(TRIGGERS)) == [], "claimed by a test and triggered here too"
    assert sorted(set(rows) - set(claims) - set(TRIGGERS)) == [], "documented but never produced"


@pytest.mark.parametrize("row", sorted(TRIGGERS))
def test_each_triggered_message_is_what_the_user_sees(row, layout, tmp_path, monkeypatch):
    seen = TRIGGERS[row](Ctx(tmp_path, layout, monkeypatch))
    assert_documented(row, seen)
