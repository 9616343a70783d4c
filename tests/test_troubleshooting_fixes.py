"""The fix a message suggests works: for every row of docs/troubleshooting.md whose fix names a
command-line flag, :data:`FIXES` shows the row's message once without the flag and then runs the
same command with the flag, which must get past the message.

The rows come from the page: a row whose fix cell names a flag (a backticked ``--flag`` or
``-o``; ``--help`` is a way to read, not a fix) must have an entry here, and rows without one
have none, so neither the page nor this registry can drift.
"""

from __future__ import annotations

import errno
import json
import os
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
import torch
from huggingface_hub import constants as hf_constants

import kit.runfolder as rundir
import kit.tune as kit_tune
from kit import io as kio
from kit.cache import main as cache_main
from kit.config import Config
from kit.data import load_fixes, read_train
from kit.data.fixture import make_fixture
from kit.data.image_cache import build_cache
from kit.ensemble.__main__ import main as ensemble_main
from kit.errors import KIT_ERRORS
from kit.faces import prepared_loader
from kit.models import resolve_weights
from kit.recipe import parse_args
from kit.runs.__main__ import main as runs_main
from kit.score import main as score_main
from kit.splits import load_splits
from kit.train.setup import RunPictures, check
from kit.tune import parse_space
from tests._day_one_triggers import DAY_ONE_FIXES
from tests._runfolders import Preds, RunSpec, one_hot_probs, summary, write_run
from tests._triggers import PAGE, documented, logged, printed

# ---- how a case sees the world --------------------------------------------------------------


@dataclass
class Ctx:
    """What a case may use: a private folder, monkeypatch, and the shared tiny layout."""

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


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("troubleshooting") / "data"
    return make_fixture(root, n_people=6, image_size=(16, 12), seed=0, n_eval_people=1)


def _run(tmp: Path, name: str, prefix: str = "p") -> Path:
    """A finished two-fold-like run of 36 validation rows (12 people) and 6 test pictures."""
    n = 36
    y = np.arange(n) % 18
    ids = [f"{prefix}{i // 3}/img{i % 3}" for i in range(n)]
    test = [f"{i:040x}.jpg" for i in range(6)]
    folds = [(i // 3) % 2 for i in range(n)]
    preds = Preds(ids, y, one_hot_probs(y, 0.5), test, one_hot_probs(y[:6]), folds=folds)
    return write_run(tmp, RunSpec(name=name, summary=summary(0.5), preds=preds))


_CODE = re.compile(r"`([^`]+)`")
_FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z-]*|-o)\b")


def rows_with_flag_fixes() -> dict[str, list[str]]:
    """id -> the flags its fix cell names, for every table row of the page that names one."""
    rows = {}
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not re.fullmatch(r"`[a-z0-9-]+`", cells[0]):
            continue
        code = " ".join(_CODE.findall(cells[-1]))
        flags = [f for f in _FLAG.findall(code) if f != "--help"]
        if flags:
            rows[cells[0].strip("`")] = flags
    return rows


def seen(fn: Callable[[], object]) -> str:
    """The message of the kit error ``fn`` raises, or "" when it gets through."""
    try:
        fn()
    except KIT_ERRORS as err:
        return str(err)
    return ""


def _train(c: Ctx, argv: list[str], base: Config | None = None) -> str:
    """What a recipe's command line ``argv`` meets up to its first batch: checks and data."""
    return seen(lambda: load_splits(check(parse_args(base or c.cfg(), argv))))


def _before_after(c: Ctx, argv: list[str], fixed: list[str], base: Config | None = None):
    return _train(c, argv, base), _train(c, [*argv, *fixed], base)


def _config(argv: list[str], fixed: list[str]) -> tuple[str, str]:
    """A config's check with ``argv``, then with ``fixed`` added (later flags win)."""
    return (
        seen(lambda: parse_args(Config(), argv).validate()),
        seen(lambda: parse_args(Config(), [*argv, *fixed]).validate()),
    )


def _cli(main: Callable[[list[str]], object], argv: list[str], fixed: list[str]):
    return printed(main, argv), printed(main, [*argv, *fixed])


def _nonstrict(break_data: Callable[[Ctx], object]) -> Callable[[Ctx], tuple[str, str]]:
    def case(c: Ctx) -> tuple[str, str]:
        break_data(c)
        return _before_after(c, [], ["--no-strict-data"])

    return case


def _unknown_fix(c: Ctx) -> None:
    path = _fixes(c, "person_id,field,value\n999999,age,30\n")
    c.mp.setattr(c, "cfg", _with(c.cfg, fixes=str(path)))


def _with(make: Callable[..., Config], **defaults) -> Callable[..., Config]:
    return lambda **changes: make(**{**defaults, **changes})


def _resume_single(c: Ctx) -> tuple[str, str]:
    run = str(_fake_run(c, c.cfg()))
    base = c.cfg(resume=run)
    return seen(lambda: check(parse_args(base, ["--folds", "all"]))), seen(lambda: check(base))


def _no_gpu(c: Ctx) -> tuple[str, str]:
    c.mp.setattr(torch.cuda, "is_available", lambda: False)
    before = seen(lambda: parse_args(Config(), ["--device", "cuda"]).validate())
    return before, seen(lambda: parse_args(Config(), ["--device", "auto"]).validate())


def _a_weights_file_gets_past(c: Ctx, model: str) -> tuple[str, str]:
    """``--pretrained`` weights of ``model`` that cannot be had, then ``--pretrained-file``."""
    weights = c.tmp / "w.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, weights)  # a file: found, not downloaded
    base = Config(model=model, pretrained=True)
    fixed = ["--pretrained-file", str(weights)]
    return seen(lambda: resolve_weights(base)), seen(
        lambda: resolve_weights(parse_args(base, fixed))
    )


def _offline(c: Ctx) -> tuple[str, str]:
    c.mp.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    c.mp.setattr(hf_constants, "HF_HUB_CACHE", str(c.tmp / "hub"))
    return _a_weights_file_gets_past(c, "resnet10t")


def _torchvision_offline(c: Ctx) -> tuple[str, str]:
    """torchvision weights neither in torch's hub cache nor downloadable; a file gets past it."""
    import urllib.error

    c.mp.setenv("TORCH_HOME", str(c.tmp / "torch"))

    def unreachable(url: str, dst: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no route to host")

    c.mp.setattr(torch.hub, "download_url_to_file", unreachable)
    return _a_weights_file_gets_past(c, "torchvision/resnet18")


def _wrong_model(c: Ctx) -> tuple[str, str]:
    from kit.models import create_model

    other = "test_vit"  # no weight name in common with test_resnet's
    weights = c.tmp / "w.pth"
    torch.save(create_model(Config(model=other)).backbone.state_dict(), weights)
    base = Config(model="test_resnet", pretrained_file=str(weights))
    return seen(lambda: create_model(base)), seen(
        lambda: create_model(parse_args(base, ["--model", other]))
    )


def _face_boxes(c: Ctx) -> tuple[str, str]:
    moved = Path(shutil.move(c.data() / "train" / "faces.csv", c.tmp / "my_boxes.csv"))
    base = Config(
        crop_mode="face",
        face_detector="boxes",
        cache_dir=str(c.tmp / "c"),
        image_size=(32, 24),
        data_dir=str(c.data()),
        face_boxes=str(c.tmp / "none.csv"),
    )
    return seen(lambda: prepared_loader(base, c.data(), workers=0)), seen(
        lambda: prepared_loader(parse_args(base, ["--face-boxes", str(moved)]), c.data(), workers=0)
    )


def _no_cascade(c: Ctx) -> tuple[str, str]:
    import cv2

    c.mp.setattr(cv2.data, "haarcascades", str(c.tmp))
    base = Config(
        crop_mode="face", cache_dir=str(c.tmp / "c"), image_size=(32, 24), data_dir=str(c.data())
    )
    run = lambda argv: seen(  # noqa: E731
        lambda: prepared_loader(parse_args(base, argv), c.data(), workers=0)
    )
    return run(["--face-detector", "opencv"]), run(["--face-detector", "skimage"])


def _resume(c: Ctx, saved: Config, changed: list[str]) -> tuple[str, str]:
    run = str(_fake_run(c, saved))
    return (
        seen(lambda: check(parse_args(Config(), ["--resume", run, *changed]))),
        seen(lambda: check(parse_args(Config(), ["--resume", run]))),
    )


def _unwritable_output(c: Ctx) -> tuple[str, str]:
    from kit.runfolder import check_output_dir

    blocker = _file(c, "runs", "a file")
    return seen(lambda: check_output_dir(blocker)), seen(lambda: check_output_dir(c.tmp / "out"))


def _read_only(c: Ctx) -> tuple[str, str]:
    from kit.runfolder import check_output_dir

    mount, real_mkdir = c.tmp / "dataset-volume", Path.mkdir

    def mkdir(self, *args, **kwargs):  # as root nothing is read-only: the refusal is simulated
        if mount in (self, *self.parents):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    c.mp.setattr(Path, "mkdir", mkdir)
    before = seen(lambda: check_output_dir(mount / "runs"))
    after = parse_args(c.cfg(), ["--output-dir", str(c.tmp / "writable")]).output_dir
    return before, seen(lambda: check_output_dir(after))


def _cache(c: Ctx) -> tuple[str, str]:
    cfg = c.cfg(cache_dir=str(_file(c, "cache", "a file")))
    splits = load_splits(cfg)
    before = seen(lambda: RunPictures.for_run(cfg, splits, progress=False))
    with_dir = parse_args(cfg, ["--cache-dir", str(c.tmp / "cache-ok")])
    without = parse_args(cfg, ["--no-cache"])
    after = seen(lambda: RunPictures.for_run(with_dir, splits, progress=False)) + seen(
        lambda: RunPictures.for_run(without, splits, progress=False)
    )
    return before, after


def _cache_disk_full(c: Ctx) -> tuple[str, str]:
    """The disk under ``full/`` has no room: the cache elsewhere, or none, gets past it."""
    from kit.data import image_cache as cache_module

    real = cache_module._new_npy

    def new_npy(path: Path, shape: tuple[int, ...]) -> np.memmap:
        if str(c.tmp / "full") in str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, shape)

    c.mp.setattr(cache_module, "_new_npy", new_npy)
    cfg = c.cfg(cache_dir=str(c.tmp / "full"))
    splits = load_splits(cfg)
    before = seen(lambda: RunPictures.for_run(cfg, splits, progress=False))
    with_dir = parse_args(cfg, ["--cache-dir", str(c.tmp / "roomy")])
    without = parse_args(cfg, ["--no-cache"])
    after = seen(lambda: RunPictures.for_run(with_dir, splits, progress=False)) + seen(
        lambda: RunPictures.for_run(without, splits, progress=False)
    )
    return before, after


def _checkpoint(c: Ctx) -> tuple[str, str]:
    """A damaged best.pt is not fixed by a flag; --resume needs last.pt: it reads that one."""
    from kit.inference import predict

    run = _fake_run(c, c.cfg())
    (run / "best.pt").write_bytes(b"half a file")
    before = seen(lambda: predict(run, read_train(c.data()).head(1)))
    return before, seen(lambda: check(parse_args(Config(), ["--resume", str(run)])))


def _no_checkpoint(c: Ctx) -> tuple[str, str]:
    folder = c.tmp / "no-epoch"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(c.cfg().to_dict()))
    before = seen(lambda: check(parse_args(Config(), ["--resume", str(folder)])))
    return before, seen(lambda: check(parse_args(c.cfg(), [])))


def _longer(c: Ctx) -> tuple[str, str]:
    """A finished run resumed trains nothing; a new run with more --epochs trains them."""
    from kit.train import fit

    done = fit(c.cfg(keep_last=False))
    before = logged(lambda: fit(c.cfg(resume=str(done.run_dir))))
    longer = fit(parse_args(c.cfg(), ["--epochs", "2"]))
    return before, "" if longer.summary["epochs_run"] == 2 else "the new run did not train longer"


def _nan_loss(c: Ctx) -> tuple[str, str]:
    from kit.train import fit

    base = c.cfg(lr=1e30, epochs=1, max_steps_per_epoch=2, warmup_epochs=0.0)
    before = seen(lambda: fit(base))
    return before, seen(lambda: fit(parse_args(base, ["--lr", "0.003", "--grad-clip", "1.0"])))


FIXES: dict[str, Callable[[Ctx], tuple[str, str]]] = {
    "tune-storage-folder": lambda c: (
        seen(lambda: kit_tune.open_storage(f"sqlite:///{c.data() / 'train' / 'train.csv'}/s.db")),
        seen(lambda: kit_tune.open_storage(f"sqlite:///{c.tmp / 'studies' / 'optuna.db'}")),
    ),
    # data: a flag that points elsewhere, or skips what is broken
    "train-csv-missing": lambda c: _before_after(
        c, ["--data-dir", str(c.data() / "train")], ["--data-dir", str(c.data())]
    ),
    "person-id-empty": _nonstrict(lambda c: _edit_meta(c, 0, "id", "")),
    "gender-invalid": _nonstrict(lambda c: _edit_meta(c, 1, "gender", "F")),
    "person-folder-missing": _nonstrict(lambda c: shutil.rmtree(_folder(c, 2))),
    "picture-missing": _nonstrict(lambda c: _one(_folder(c), "normal").unlink()),
    "image-empty": _nonstrict(lambda c: _bad_picture(c, b"")),
    "fixes-unknown-person": _nonstrict(_unknown_fix),
    "split-too-small": lambda c: _before_after(c, ["--val-ratio", "0.05"], ["--val-ratio", "0.3"]),
    "folds-too-many": lambda c: _before_after(
        c, ["--fold", "0", "--n-folds", "10"], ["--n-folds", "3"]
    ),
    # K-fold and config flags
    "folds-not-index": lambda c: _before_after(c, ["--folds", "0,x"], ["--folds", "all"]),
    "folds-no-such-fold": lambda c: _before_after(c, ["--folds", "7"], ["--n-folds", "8"]),
    "folds-and-fold": lambda c: _before_after(
        c, ["--folds", "all", "--fold", "0"], ["--fold", "none"]
    ),
    "kfold-resume-single": _resume_single,
    "kfold-resume-changed": lambda c: _resume(
        c, c.cfg(folds="all", seed=1), ["--folds", "all", "--seed", "42"]
    ),
    "fixes-spec": lambda c: (
        seen(lambda: load_fixes(parse_args(Config(), ["--fixes", "buitlin"]).fixes)),
        seen(lambda: load_fixes(parse_args(Config(), ["--fixes", "builtin"]).fixes)),
    ),
    "config-fold": lambda c: _before_after(c, ["--fold", "5"], ["--fold", "4"]),
    "config-device-no-gpu": _no_gpu,
    "cli-unknown-flag": lambda c: (
        printed(lambda a: parse_args(Config(), a), ["--learning-rate", "0.1"]),
        printed(lambda a: parse_args(Config(), a), ["--lr", "0.1"]),
    ),
    "cli-tuple": lambda c: (
        printed(lambda a: parse_args(Config(), a), ["--image-size", "64"]),
        printed(lambda a: parse_args(Config(), a), ["--image-size", "320", "256"]),
    ),
    "cli-dict": lambda c: (
        printed(lambda a: parse_args(Config(), a), ["--head-weights", "age"]),
        printed(lambda a: parse_args(Config(), a), ["--head-weights", "age=2,mask=1"]),
    ),
    # models, weights, faces
    "pretrained-offline": _offline,
    "pretrained-file-wrong-model": _wrong_model,
    "torchvision-weights-unavailable": _torchvision_offline,
    "face-boxes-missing": _face_boxes,
    "face-detector-no-cascade": _no_cascade,
    # checkpoints and resuming
    "checkpoint-unreadable": _checkpoint,
    "resume-no-checkpoint": _no_checkpoint,
    "resume-changed": lambda c: _resume(c, c.cfg(), ["--lr", "0.5"]),
    "resume-complete": lambda c: _longer(c),
    "loss-not-finite": _nan_loss,
    # output folders and caches
    "output-file-in-way": _unwritable_output,
    "output-read-only": lambda c: _read_only(c),
    "cache-unwritable": _cache,
    "cache-disk-full": _cache_disk_full,
    # ensembling and scoring: the command's own flags
    "needs-probs": lambda c: _cli(
        ensemble_main, [str(_member(c, "a")), str(_sub(c, [1] * 6))], ["--method", "hard"]
    ),
    "search-impossible": lambda c: _search(c),
    "weights-cli": lambda c: (
        printed(ensemble_main, [str(_member(c, "a")), "--weights", "half"]),
        printed(ensemble_main, [str(_member(c, "b")), "--weights", "auto"]),
    ),
    "labels-differ": lambda c: _labels_differ(c),
    "output-json-collision": lambda c: (
        printed(ensemble_main, [str(_member(c, "a")), "-o", str(c.tmp / "out.json")]),
        printed(ensemble_main, [str(_member(c, "b")), "-o", str(c.tmp / "out.csv")]),
    ),
    "ensemble-output-unwritable": lambda c: (
        printed(ensemble_main, [str(_member(c, "a")), "-o", str(_file(c, "f", "x") / "s.csv")]),
        printed(ensemble_main, [str(_member(c, "b")), "-o", str(c.tmp / "ok" / "s.csv")]),
    ),
    "calibrate-no-probs": lambda c: (
        printed(ensemble_main, [str(_run(c.tmp, "a")), "--method", "hard", "--calibrate"]),
        printed(ensemble_main, [str(_run(c.tmp, "b")), "--method", "soft", "--calibrate"]),
    ),
    "stack-weights": lambda c: (
        printed(ensemble_main, [str(_run(c.tmp, "a")), "--method", "stack", "--weights", "1"]),
        printed(ensemble_main, [str(_run(c.tmp, "b")), str(_run(c.tmp, "c")), "--method", "stack"]),
    ),
    "score-order": lambda c: _score_order(c),
    "score-needs-answers": lambda c: _cli(
        score_main, [str(_sub(c, [1] * 6))], ["--answers", str(_sub(c, [1] * 6, name="a.csv"))]
    ),
    "score-no-val": lambda c: _score_no_val(c),
    "score-png-unwritable": lambda c: (
        printed(score_main, [*_scored(c), "--png", str(_file(c, "f", "x") / "cm.png")]),
        printed(score_main, [*_scored(c), "--png", str(c.tmp / "cm.png")]),
    ),
    # the ledger
    "ledger-no-folder": lambda c: _ledger_no_folder(c),
    "ledger-killed-run": lambda c: _killed_resumable(c),
    "ledger-hidden-columns": lambda c: (
        printed(runs_main, [str(_twice(c)), "--width", "50"]),
        printed(runs_main, [str(c.tmp), "--width", "0"]),
    ),
    "prune-needs-yes": lambda c: _prune(c),
    # the cache command: the folder that holds the caches
    "cache-no-folder": lambda c: (
        printed(cache_main, ["--list", str(c.tmp / "nope")]),
        printed(cache_main, ["--list", str(_cached(c))]),
    ),
    # training techniques: the flag's value the message asks for
    "drop-ages-spec": lambda c: _config(["--drop-ages", "27_29"], ["--drop-ages", "27-29,57-59"]),
    "mix-lam-range": lambda c: _config(["--mix-lam", "0.6", "0.4"], ["--mix-lam", "0.4", "0.6"]),
    "config-amp-dtype": lambda c: _config(["--amp-dtype", "fp16"], ["--amp-dtype", "float16"]),
    "ema-decay-range": lambda c: _config(["--ema-decay", "1.0"], ["--ema-decay", "0.999"]),
    "refit-kfold": lambda c: _config(
        ["--refit", "continue", "--folds", "all"], ["--refit", "none"]
    ),
    "tta-unknown-view": lambda c: _config(["--tta", "hflip+flip"], ["--tta", "hflip+shift"]),
    "crop-mix-range": lambda c: _config(["--crop-mix", "1.5"], ["--crop-mix", "0.5"]),
    "crop-mix-mode": lambda c: _config(
        ["--crop-mix", "0.5", "--crop-mode", "tight"], ["--crop-mode", "face"]
    ),
    # the hyper-parameter search: what --param says, and the folds it searches on
    "tune-param-format": lambda c: (
        seen(lambda: parse_space(["lr"])),
        seen(lambda: parse_space(["lr=log:1e-4:1e-2"])),
    ),
    "tune-param-range": lambda c: (
        seen(lambda: parse_space(["lr=1e-2:1e-4"])),
        seen(lambda: parse_space(["lr=0.001"])),
    ),
    "tune-folds": lambda c: (
        seen(lambda: kit_tune.run(c.cfg(folds="all"), {"lr": "1e-3"}, 1)),
        seen(
            lambda: kit_tune.run(
                parse_args(c.cfg(folds="all"), ["--folds", "none", "--fold", "0"]),
                {"lr": "1e-3"},
                1,
            )
        ),
    ),
}
FIXES.update(DAY_ONE_FIXES)  # the environment: torch and torchvision of one build


def _cached(c: Ctx) -> Path:
    """A cache folder holding one small cache."""
    folder = c.tmp / "cache"
    paths = [str(p) for p in read_train(c.data())["path"][:2]]
    build_cache(
        paths,
        lambda p: np.zeros((8, 8, 3), np.uint8),
        size=(8, 8),
        cache_dir=folder,
        progress=False,
    )
    return folder


def _labels_differ(c: Ctx) -> tuple[str, str]:
    a = _member(c, "a")
    b = _edit_csv(_member(c, "b", 1) / "val_probs.csv", lambda d: d.assign(label=17)).parent
    before = printed(ensemble_main, [str(a), str(b)])
    # trained with the same --fixes, the members' validation labels agree again
    _edit_csv(
        b / "val_probs.csv", lambda d: d.assign(label=pd.read_csv(a / "val_probs.csv")["label"])
    )
    return before, printed(ensemble_main, [str(a), str(b)])


def _search(c: Ctx) -> tuple[str, str]:
    members = [str(p) for p in _no_val_rows_in_common(c)]
    before = printed(ensemble_main, [*members, "--weights", "auto"])
    return before, printed(ensemble_main, [*members, "--weights", "2,1"])


def _scored(c: Ctx) -> list[str]:
    return [str(_sub(c, [1] * 6)), "--answers", str(_sub(c, [1] * 6, name="a.csv"))]


def _score_order(c: Ctx) -> tuple[str, str]:
    answers = _sub(c, [1] * 6, name="a.csv")
    _file(c, "info.csv", "ImageID,ans\n" + "".join(f"{i},0\n" for i in IDS))
    members = [str(_member(c, "a"))]
    before = printed(score_main, [str(_sub(c, [1] * 6, IDS[::-1])), "--answers", str(answers)])
    out = c.tmp / "ordered.csv"
    printed(ensemble_main, [*members, "--info", str(c.tmp / "info.csv"), "-o", str(out)])
    return before, printed(score_main, [str(out), "--answers", str(answers)])


def _score_no_val(c: Ctx) -> tuple[str, str]:
    run = _member(c, "a")
    (run / "val_probs.csv").unlink()
    answers = _sub(c, [1] * 6, name="a.csv")
    return printed(score_main, [str(run)]), printed(
        score_main, [str(_sub(c, [1] * 6)), "--answers", str(answers)]
    )


def _ledger_no_folder(c: Ctx) -> tuple[str, str]:
    _member(c, "a")
    return printed(runs_main, [str(c.tmp / "nope")]), printed(runs_main, [str(c.tmp)])


def _killed_resumable(c: Ctx) -> tuple[str, str]:
    """A killed run's ledger status, and its resume getting past the checks."""
    run = _killed_run(c)
    (run / "last.pt").write_bytes(b"resumable")
    return printed(runs_main, [str(run.parent)]), seen(
        lambda: check(parse_args(Config(), ["--resume", str(run)]))
    )


def _prune(c: Ctx) -> tuple[str, str]:
    runs = write_run(c.tmp / "runs", RunSpec(status="failed")).parent
    before = printed(runs_main, [str(runs), "--prune"])
    return before, printed(runs_main, [str(runs), "--prune", "--yes"])


def test_every_row_with_a_flag_fix_has_a_case_and_no_other():
    rows = rows_with_flag_fixes()
    assert len(rows) >= 30
    assert sorted(set(rows) - set(FIXES)) == [], "rows whose flag fix is never tried"
    assert sorted(set(FIXES) - set(rows)) == [], "cases for rows whose fix names no flag"


#: Rows whose case starts fresh interpreters (a planted torchvision must meet a new import of
#: torch): `pytest -m slow`. The message itself stays in plain pytest (test_troubleshooting.py).
_FRESH_INTERPRETERS = {"torchvision-build"}


@pytest.mark.parametrize(
    "row",
    [
        pytest.param(row, marks=[pytest.mark.slow] if row in _FRESH_INTERPRETERS else [])
        for row in sorted(rows_with_flag_fixes())
    ],
)
def test_the_flag_a_fix_names_gets_past_the_message(row, layout, tmp_path, monkeypatch):
    excerpt = " ".join(documented()[row].split())
    before, after = FIXES[row](Ctx(tmp_path, layout, monkeypatch))
    assert excerpt in " ".join(before.split()), f"{row}: the case does not show {excerpt!r}"
    assert excerpt not in " ".join(after.split()), f"{row}: the fix did not help:\n{after}"
    assert "error:" not in after and "Traceback" not in after, f"{row}:\n{after}"
