"""Faults: a killed run resumes to the same result, Ctrl-C keeps the last epoch, a full or
read-only disk gives a clear error and never a half-written file, every writer is atomic."""

from __future__ import annotations

import ast
import errno
import json
import os
import signal
import socket
import subprocess
import sys
import time
import weakref
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path

import pandas as pd
import pytest
import torch

import kit.runfolder as rundir
import kit.splits as kit_splits
from kit.config import Config
from kit.io import OutputError
from kit.recipe import parse_args
from kit.runs import ledger
from kit.runs.__main__ import main as ledger_main
from kit.train import fit
from tests._training import at_training_step
from tests._triggers import assert_documented

ROOT = Path(__file__).resolve().parents[1]
STEPS = 3  # training steps per epoch of the runs below

# Run in a child process: trains like fit() always does, but blocks inside the second training
# step of epoch 2 after touching a marker file, so the test can kill it at a known point
# (epoch 1 finished and checkpointed, epoch 2 half done). The hook only observes the model.
_KILLABLE = """
import json, sys, time
import torch
torch.set_num_threads(1)  # as in tests/conftest.py: the same arithmetic as the test process
import timm
from kit.config import Config
from kit.recipe import parse_args
from kit.train import fit

cfg = Config.from_dict(json.loads(sys.argv[1]))
marker, block_at = sys.argv[2], int(sys.argv[3])
real, calls = timm.create_model, [0]

def hook(module, args):
    if module.training:
        calls[0] += 1
        if calls[0] == block_at:
            open(marker, "w").close()
            time.sleep(600)

def create_model(*args, **kwargs):
    model = real(*args, **kwargs)
    model.register_forward_pre_hook(hook)
    return model

timm.create_model = create_model
fit(cfg)
"""


@pytest.fixture
def base(tiny_base: Config) -> Config:
    """Three epochs of ``STEPS`` steps, warming up over half an epoch."""
    return tiny_base.replace(epochs=3, max_steps_per_epoch=STEPS, warmup_epochs=0.5)


def _metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv").drop(columns="seconds")


def _leftovers(run_dir: Path) -> list[str]:
    return sorted(p.name for p in run_dir.iterdir() if p.name.endswith(".tmp"))


def _wait_for(marker: Path, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"the training process ended early (code {proc.returncode}):\n{out}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the training process never reached epoch 2")
        time.sleep(0.05)


#: The killed run plain, and with the techniques that carry state or random draws across
#: epochs: the weight average (in last.pt), same-class CutMix (numpy's generator), the
#: device augmentation (torch's generator) and the crop mix (the per-picture seeds).
TECHNIQUES = {
    "plain": {},
    "ema_mix": {
        "ema": True,
        "mix": "cutmix",
        "mix_pairs": "same_class",
        "device_aug": "strong",
        "crop_mix": 0.5,
        "face_detector": "boxes",
    },
}


@pytest.mark.slow
@pytest.mark.parametrize("techniques", TECHNIQUES.values(), ids=TECHNIQUES.keys())
def test_sigkill_mid_epoch_then_resume_ends_like_an_uninterrupted_run(base, tmp_path, techniques):
    killed_out, straight_out = tmp_path / "killed", tmp_path / "straight"
    cfg = base.replace(output_dir=str(killed_out), **techniques)
    script, marker = tmp_path / "killable.py", tmp_path / "in-epoch-2"
    script.write_text(_KILLABLE)
    proc = subprocess.Popen(
        [sys.executable, str(script), json.dumps(cfg.to_dict()), str(marker), str(STEPS + 2)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # the uninterrupted reference trains while the child starts up
        reference = fit(cfg.replace(output_dir=str(straight_out)))
        _wait_for(marker, proc)
    finally:
        proc.kill()  # SIGKILL: no handler runs, nothing is flushed or recorded
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL

    (run_dir,) = killed_out.iterdir()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "running" and status["epoch"] == 1
    assert status["pid"] == proc.pid
    assert _metrics(run_dir)["epoch"].tolist() == [1]
    last = torch.load(run_dir / "last.pt", weights_only=True)
    assert last["state"]["epoch"] == 1
    assert ("ema" in last) == bool(techniques.get("ema"))
    assert _leftovers(run_dir) == []
    assert not (run_dir / "summary.json").exists()

    # the ledger does not take the dead process's "running" at its word
    row = ledger.load(killed_out).set_index("name").loc[run_dir.name]
    assert row["status"] == "incomplete"
    out = StringIO()
    with redirect_stdout(out):
        assert ledger_main([str(killed_out)]) == 0
    assert "incomplete" in out.getvalue() and "running" not in out.getvalue()

    # as a user would: the run's own config comes from its folder
    resumed = fit(parse_args(Config(), ["--resume", str(run_dir)]))
    assert resumed.run_dir == run_dir and resumed.status == "complete"
    pd.testing.assert_frame_equal(_metrics(run_dir), _metrics(reference.run_dir))
    pd.testing.assert_frame_equal(
        pd.read_csv(run_dir / "val_probs.csv"), pd.read_csv(reference.run_dir / "val_probs.csv")
    )
    assert (run_dir / "submission.csv").read_bytes() == (
        reference.run_dir / "submission.csv"
    ).read_bytes()
    assert ledger.load(killed_out).set_index("name").loc[run_dir.name, "status"] == "complete"


def test_ctrl_c_mid_epoch_keeps_the_last_finished_epoch_and_exits_130(base, tmp_path):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    cfg = base.replace(output_dir=str(tmp_path), epochs=2)
    with pytest.MonkeyPatch.context() as mp:
        # a real SIGINT, delivered while the second step of epoch 2 is running
        at_training_step(mp, STEPS + 2, lambda: os.kill(os.getpid(), signal.SIGINT))
        with pytest.raises(SystemExit) as info:
            fit(cfg)
    assert info.value.code == 130
    (run_dir,) = tmp_path.iterdir()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == "interrupted" and status["epoch"] == 1
    assert torch.load(run_dir / "last.pt", weights_only=True)["state"]["epoch"] == 1
    assert _metrics(run_dir)["epoch"].tolist() == [1]
    assert _leftovers(run_dir) == []
    assert ledger.ledger_row(run_dir)["status"] == "interrupted"


# ---- output folder: read-only, full, or a file in the way ------------------------------------


def _no_training(monkeypatch) -> None:
    def refuse(cfg):
        raise AssertionError("training data was read: the output error came too late")

    monkeypatch.setattr(kit_splits, "load_splits", refuse)


def test_output_dir_that_is_a_file_fails_before_any_work(base, tmp_path, monkeypatch):
    _no_training(monkeypatch)
    blocker = tmp_path / "runs"
    blocker.write_text("not a folder")
    with pytest.raises(OutputError, match=r"runs: a file is in the way where a folder") as info:
        fit(base.replace(output_dir=str(blocker)))
    assert "--output-dir" in str(info.value)
    assert_documented("output-file-in-way", str(info.value))
    with pytest.raises(OutputError, match="a file is in the way"):
        fit(base.replace(output_dir=str(blocker / "sub")))
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize(
    ("code", "reason"),
    [(errno.EROFS, "read-only"), (errno.ENOSPC, "disk is full"), (errno.EACCES, "permission")],
)
def test_unwritable_output_dir_fails_before_any_work(base, tmp_path, monkeypatch, code, reason):
    # As root, permissions are not enforced: the file system's refusal is simulated.
    _no_training(monkeypatch)
    out = tmp_path / "runs"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if out in (self, *self.parents):
            raise OSError(code, os.strerror(code), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    with pytest.raises(OutputError, match=rf"cannot write {out}.*{reason}"):
        fit(base.replace(output_dir=str(out)))
    assert not out.exists()


def test_disk_full_while_checkpointing_keeps_the_old_checkpoint(base, tmp_path, monkeypatch):
    real_save, saves = torch.save, []

    def save(obj, f, *args, **kwargs):
        name = Path(getattr(f, "name", f)).name  # kit passes the open temporary file
        saves.append(name)
        if name.startswith(".last.pt.") and sum(n.startswith(".last.pt.") for n in saves) == 2:
            f.write(b"half a checkpoint")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    real_status = rundir.write_status

    def status(run_dir, state, *args, **kwargs):
        if state == "failed":  # the disk is really full: recording the failure fails too
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_status(run_dir, state, *args, **kwargs)

    monkeypatch.setattr(rundir, "write_status", status)
    with pytest.raises(OutputError, match=r"cannot write .*last\.pt: the disk is full") as info:
        fit(base.replace(output_dir=str(tmp_path), epochs=3))
    assert "status.json" not in str(info.value)  # the first error, not the bookkeeping one
    (run_dir,) = tmp_path.iterdir()
    assert torch.load(run_dir / "last.pt", weights_only=True)["state"]["epoch"] == 1
    assert _leftovers(run_dir) == [] and not list(run_dir.glob(".*"))
    assert json.loads((run_dir / "status.json").read_text())["epoch"] == 1


def test_a_full_disk_while_checkpointing_is_recorded_in_status_json(base, tmp_path, monkeypatch):
    """The disk is full while the checkpoint's temporary file holds its blocks: deleted but
    still open (torch's writer keeps the descriptor, the traceback keeps the writer), or still
    there. Once both are gone there is room for status.json, which records the failure."""
    real_save, handles = torch.save, []

    def save(obj, f, *args, **kwargs):
        if not str(getattr(f, "name", f)).rpartition("/")[2].startswith(".last.pt."):
            return real_save(obj, f, *args, **kwargs)
        writer = open(f, "wb") if isinstance(f, (str, os.PathLike)) else f  # noqa: SIM115
        handles.append(weakref.ref(writer))
        writer.write(b"part of a checkpoint")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . file write failed")

    def disk_full(run_dir: Path) -> bool:
        held = [ref() for ref in handles]
        return any(h is not None and not h.closed for h in held) or any(run_dir.glob(".*.tmp"))

    real_status = rundir.write_status

    def status(run_dir, state, *args, **kwargs):
        if state != "running" and disk_full(Path(run_dir)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_status(run_dir, state, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(rundir, "write_status", status)
    with pytest.raises(OutputError, match=r"cannot write .*last\.pt: the disk is full"):
        fit(base.replace(output_dir=str(tmp_path), epochs=2))
    (run_dir,) = tmp_path.iterdir()
    record = json.loads((run_dir / "status.json").read_text())
    assert record["status"] == "failed", record
    assert "the disk is full" in record["error"]
    assert not list(run_dir.glob(".*"))


# ---- the ledger and dead processes ------------------------------------------------------------


def _status_run(root: Path, name: str, exist_ok: bool = False, **status) -> Path:
    run = root / name
    run.mkdir(parents=True, exist_ok=exist_ok)
    if not (run / "config.json").exists():
        (run / "config.json").write_text("{}")
    record = {"status": "running", "epoch": 1, "updated": rundir.now(), **status}
    (run / "status.json").write_text(json.dumps(record))
    return run


def test_ledger_tells_a_live_run_from_a_dead_one(tmp_path):
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(ended.stdout)
    host = socket.gethostname()
    _status_run(tmp_path, "alive", pid=os.getpid(), host=host)
    _status_run(tmp_path, "dead", pid=dead_pid, host=host)
    _status_run(tmp_path, "elsewhere", pid=dead_pid, host=host + "-other")
    _status_run(tmp_path, "old-format")  # no pid: only the staleness rule applies
    status = ledger.load(tmp_path).set_index("name")["status"].to_dict()
    assert status == {
        "alive": "running",
        "dead": "incomplete",
        "elsewhere": "running",
        "old-format": "running",
    }
    assert_documented("ledger-killed-run", status["dead"])


def test_a_run_that_is_still_training_cannot_be_resumed(base, tmp_path):
    cfg = base.replace(output_dir=str(tmp_path / "runs"))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(cfg.to_dict()))
    (run / "last.pt").write_bytes(b"placeholder")
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]) as other:
        try:
            _status_run(tmp_path, "run", exist_ok=True, pid=other.pid, host=socket.gethostname())
            with pytest.raises(RuntimeError, match=rf"still running \(process {other.pid} ") as err:
                fit(cfg.replace(resume=str(run)))
        finally:
            other.kill()
    assert_documented("resume-still-running", str(err.value))
    assert (run / "last.pt").read_bytes() == b"placeholder"
    # once that process is gone, resuming goes ahead (and here meets the placeholder file)
    with pytest.raises(ValueError, match="cannot read checkpoint") as err:
        fit(cfg.replace(resume=str(run)))
    assert_documented("resume-unreadable", str(err.value))


# ---- every writer goes through kit.io -----------------------------------------------------------

#: Calls that write files. Each must write a temporary path from kit.io.atomic_path (a
#: variable named ``tmp``) or a handle from kit.io.atomic_write (``fh``), or return text.
_WRITERS = {"save", "to_csv", "to_json", "to_parquet", "to_pickle", "tofile", "dump", "savefig"}
_ALWAYS_BAD = {"write_text", "write_bytes"}
_SAFE_TARGETS = {"tmp", "fh"}
#: kit's own atomic writers, called by their usual names.
_SAFE_CALLS = {"io.write_text", "io.write_json", "cfg.save"}
#: Files allowed to write directly, and why.
_EXEMPT = {
    "kit/io.py": "the atomic writer itself",
    "kit/data/fixture.py": "built in a hidden staging folder that is renamed into place whole",
}


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")


def _path_arg(call: ast.Call) -> ast.AST | None:
    """The argument naming the file written (None: the call returns text instead)."""
    func = call.func
    owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
    # torch.save(obj, f) and json/yaml/pickle.dump(obj, f) take the file second
    position = 1 if owner == "torch" or _call_name(call) == "dump" else 0
    if len(call.args) > position:
        return call.args[position]
    keys = ("f", "fp", "file", "path", "path_or_buf", "stream")
    return next((k.value for k in call.keywords if k.arg in keys), None)


def _unsafe(target: ast.AST | None) -> bool:
    return target is not None and not (isinstance(target, ast.Name) and target.id in _SAFE_TARGETS)


def direct_writes(source: str) -> list[tuple[int, str]]:
    """(line, call) of every file write in ``source`` that bypasses kit.io."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = _call_name(node)
        if ast.unparse(node.func) in _SAFE_CALLS:
            continue
        if name in _ALWAYS_BAD:
            bad.append((node.lineno, name))
        elif name == "open" and len(node.args) > 1:
            mode = node.args[1]
            writes = isinstance(mode, ast.Constant) and set(str(mode.value)) & set("wax")
            if writes and _unsafe(node.args[0]):
                bad.append((node.lineno, name))
        elif name in _WRITERS and _unsafe(_path_arg(node)):
            bad.append((node.lineno, name))
    return sorted(bad)


def test_every_file_kit_writes_goes_through_kit_io():
    files = sorted((ROOT / "kit").rglob("*.py"))
    assert len(files) > 20
    bad = [
        f"{f.relative_to(ROOT)}:{line} {name}()"
        for f in files
        if f.relative_to(ROOT).as_posix() not in _EXEMPT
        for line, name in direct_writes(f.read_text(encoding="utf-8"))
    ]
    assert bad == [], f"write these through kit.io (atomic_path / atomic_write): {bad}"


def test_the_writer_audit_catches_direct_writes():
    source = (
        "def a(df, p, obj, tmp, img):\n"
        "    df.to_csv(p)\n"
        "    torch.save(obj, p)\n"
        "    open(p, 'w')\n"
        "    p.write_text('x')\n"
        "    json.dump(obj, open(p, 'a'))\n"
        "    img.save(p, format='PNG')\n"
        "    torch.save(obj, tmp)\n"
        "    img.save(tmp, format='PNG')\n"
        "    text = df.to_csv(index=False)\n"
        "    open(p, 'rb')\n"
        "    io.write_text(p, 'x')\n"
    )
    assert direct_writes(source) == [
        (2, "to_csv"),
        (3, "save"),
        (4, "open"),
        (5, "write_text"),
        (6, "dump"),
        (6, "open"),
        (7, "save"),
    ]


def test_ctrl_c_while_torch_writes_a_checkpoint_is_an_interrupt_after_a_whole_file(
    tmp_path, monkeypatch
):
    # torch.save writes through the open file's Python write(): a KeyboardInterrupt raised in
    # there stopped the checkpoint half-way, and torch may report it as its own RuntimeError
    # ("file write failed"), which recorded the run as failed (seen once in a notebook test)
    import os
    import signal

    from kit.train import checkpoint

    real_save = torch.save
    sent = []

    def save_interrupted_midway(obj, fh, *args, **kwargs):
        class Interrupting:
            def write(self, data):
                if not sent:
                    sent.append(True)
                    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while torch writes
                return fh.write(data)

            def __getattr__(self, name):
                return getattr(fh, name)

        return real_save(obj, Interrupting(), *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_interrupted_midway)
    path = tmp_path / "last.pt"
    with pytest.raises(KeyboardInterrupt):
        checkpoint._save({"w": torch.arange(1000.0)}, path)
    assert sent
    assert torch.equal(torch.load(path, weights_only=True)["w"], torch.arange(1000.0))
