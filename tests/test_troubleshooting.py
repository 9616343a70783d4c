"""docs/troubleshooting.md lists every message a user can meet; each row is produced by a test.

Every row of the page's tables has an id and a message excerpt. A row is claimed where a test
provokes its message the way a user would: the test of the module that produces it calls
``assert_documented(<row id>, <the text the user sees>)`` (tests/_triggers.py), or ``TRIGGERS``
here maps the id to a small function that provokes it and returns that text. The page and the
claims name the same ids, so neither can drift from the code.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import kit.runfolder as rundir
import kit.train.checkpoint as checkpoint
import kit.tune as kit_tune
from kit import io as kio
from kit.config import Config
from kit.data import read_eval, read_train
from kit.data.fixture import make_fixture
from kit.ensemble import ensemble, write
from kit.ensemble.__main__ import main as ensemble_main
from kit.inference import predict
from kit.losses import LOSSES
from kit.predict import read_inputs
from kit.runfolder import write_submission
from kit.runs.__main__ import main as runs_main
from kit.score import main as score_main
from kit.splits import load_splits
from kit.train import fit
from tests._day_one_triggers import DAY_ONE
from tests._own_code_triggers import OWN_CODE
from tests._runfolders import Preds, RunSpec, one_hot_probs, summary, write_run
from tests._triggers import assert_documented, documented, logged, printed, raised, warned

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


_TEST_LOSS = "kit_test_loss"  # unregistered after every row's test


def _register_loss(ctx: Ctx, forward: Callable[[torch.Tensor], torch.Tensor]) -> str:
    class _Loss(nn.Module):
        def forward(self, logits, target):
            return forward(logits)

    LOSSES.register(_TEST_LOSS, lambda **kwargs: _Loss(), overwrite=True)
    return _TEST_LOSS


def _raise(err: BaseException) -> Callable[[torch.Tensor], torch.Tensor]:
    def forward(logits: torch.Tensor) -> torch.Tensor:
        raise err

    return forward


def _os_error(code: int) -> Callable[..., None]:
    def fail(*args, **kwargs):
        raise OSError(code, "simulated")

    return fail


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
TRIGGERS: dict[str, Trigger] = {
    "checkpoint-missing": lambda c: raised(
        lambda: predict(c.tmp, pd.DataFrame({"path": []})), FileNotFoundError
    ),
    # training and resuming
    "resume-no-checkpoint": lambda c: raised(lambda: fit(c.cfg(resume=str(c.tmp)))),
    "terminated": lambda c: logged(lambda: fit(c.cfg(loss=_register_loss(c, _sigterm)))),
    "eval-picture-bad": lambda c: raised(
        lambda: (Path(read_eval(c.data())["path"][0]).write_bytes(b""), load_splits(c.cfg()))
    ),
    "loss-not-finite": lambda c: raised(
        lambda: fit(c.cfg(loss=_register_loss(c, lambda x: x.sum() * float("nan"))))
    ),
    "predict-csv-missing": lambda c: raised(
        lambda: read_inputs(_file(c, "l.csv", "path\na.jpg\n"))
    ),
    "predict-no-pictures": lambda c: raised(lambda: read_inputs(c.tmp)),
    "interrupted-resumable": lambda c: logged(
        lambda: (
            c.mp.setattr(checkpoint, "save_last", _nth_call_raises(checkpoint.save_last, 2)),
            fit(c.cfg(epochs=2)),
        )
    ),
    "resume-complete": lambda c: logged(
        lambda: fit(c.cfg(resume=str(fit(c.cfg(keep_last=False)).run_dir)))
    ),
    "failure-unrecorded": lambda c: logged(
        lambda: (
            c.mp.setattr(rundir, "write_status", _fail_on_failed(rundir.write_status)),
            fit(c.cfg(loss=_register_loss(c, _raise(RuntimeError("boom"))))),
        )
    ),
    # output: run folders, files, caches
    "output-quota": lambda c: raised(
        lambda: kio.atomic_write(c.tmp / "x.txt", _os_error(errno.EDQUOT))
    ),
    # ensembling: the members
    "member-missing": lambda c: raised(lambda: ensemble([c.tmp / "nope"])),
    "id-empty": lambda c: raised(
        lambda: ensemble([_member(c, "a"), _sub(c, [1] * 6, ["", *IDS[1:]])], "hard")
    ),
    "id-twice": lambda c: raised(
        lambda: ensemble([_member(c, "a"), _sub(c, [1] * 6, [IDS[0], *IDS[:-1]])], "hard")
    ),
    "csv-unreadable": lambda c: raised(
        lambda: ensemble([_member(c, "a"), _file(c, "sub.csv", "")], "hard")
    ),
    "csv-no-rows": lambda c: raised(
        lambda: ensemble([_member(c, "a"), _file(c, "sub.csv", "ImageID,ans\n")], "hard")
    ),
    "no-test-for-some": lambda c: raised(
        lambda: ensemble([_member(c, "a"), _unlink(_member(c, "b", 1) / "test_probs.csv").parent])
    ),
    "weights-cli": lambda c: printed(
        ensemble_main, [str(_member(c, "a")), "--weights", "half,half"]
    ),
    "nothing-to-write": lambda c: raised(
        lambda: write(
            ensemble([_unlink(_member(c, "a") / "test_probs.csv").parent]), c.tmp / "s.csv"
        )
    ),
    "labels-differ": lambda c: warned(
        lambda: ensemble(
            [
                _member(c, "a"),
                _edit_csv(
                    _member(c, "b", 1) / "val_probs.csv", lambda d: d.assign(label=17)
                ).parent,
            ]
        )
    ),
    "no-val-score": lambda c: printed(ensemble_main, [str(p) for p in _no_val_rows_in_common(c)]),
    # scoring and submissions
    "submission-rows": lambda c: raised(
        lambda: write_submission(np.zeros(3, int), pd.DataFrame({"ImageID": IDS}), c.tmp / "s.csv")
    ),
    # tracking and search (docs/tracking.md, docs/search.md)
    "tune-folds": lambda c: raised(lambda: kit_tune.run(c.cfg(folds="all"), {"lr": "1e-3"}, 1)),
    "tune-trial-died": lambda c: logged(lambda: _rerun_killed_trial(c)),
    "ledger-plot-empty": lambda c: printed(
        runs_main, [str(_run_without_epochs(c)), "--plot", str(c.tmp / "x.png")]
    ),
    # the optional picture, the record's name, the command's own output flag
    "score-no-val": lambda c: printed(
        score_main, [str(_unlink(_member(c, "a") / "val_probs.csv").parent)]
    ),
}
TRIGGERS.update(DAY_ONE)  # the environment: torch and torchvision of different builds
TRIGGERS.update(OWN_CODE)  # model sources, optimizers, a run's own code


def _rerun_killed_trial(ctx: Ctx) -> None:
    """A study whose trial 0 was left running by a worker process that has since ended."""
    import optuna

    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    cfg = ctx.cfg()
    storage = kit_tune.default_storage(cfg.output_dir)
    study = optuna.create_study(study_name=cfg.name, storage=storage, direction="maximize")
    trial = study.ask({"lr": optuna.distributions.CategoricalDistribution([1e-3])})
    trial.set_user_attr("pid", int(ended.stdout))
    trial.set_user_attr("host", socket.gethostname())
    kit_tune.run(cfg, {"lr": "1e-3"}, 1)


def _run_without_epochs(ctx: Ctx) -> Path:
    run = ctx.tmp / "runs" / "20240101-000000_early"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"status": "failed", "epoch": 0}))
    return run.parent


def _twice(ctx: Ctx) -> Path:
    """A folder of two runs both named ``a`` (the same run trained again)."""
    _member(ctx, "a")
    return _member(ctx, "a", stamp="20240102-120000").parent


def _sigterm(logits: torch.Tensor) -> torch.Tensor:
    """A real SIGTERM to this process in the middle of the first batch."""
    os.kill(os.getpid(), signal.SIGTERM)
    return logits.sum()


def _unlink(path: Path) -> Path:
    path.unlink()
    return path


def _nth_call_raises(real: Callable[..., None], n: int) -> Callable[..., None]:
    """``real``, except that its ``n``-th call is a Ctrl-C (before it writes anything)."""
    calls = [0]

    def call(*args, **kwargs) -> None:
        calls[0] += 1
        if calls[0] == n:
            raise KeyboardInterrupt
        real(*args, **kwargs)

    return call


def _fail_on_failed(real: Callable[..., None]) -> Callable[..., None]:
    def write_status(run_dir, status, *args, **kwargs):
        if status == "failed":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(run_dir, status, *args, **kwargs)

    return write_status


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
    try:
        seen = TRIGGERS[row](Ctx(tmp_path, layout, monkeypatch))
    finally:
        if _TEST_LOSS in LOSSES:
            LOSSES.unregister(_TEST_LOSS)
    assert_documented(row, seen)
