"""kit.tracking with the real packages and no network: TensorBoard event files, W&B offline
run files and an MLflow store read back; a resumed run continues the same tracker runs; a
failing tracker (or a server killed mid-run) is warned about once and never stops training."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest

from kit.config import Config
from kit.runfolder import TRACKER_IDS, read_tracker_ids, write_tracker_id
from kit.tracking import (
    EXTRA,
    TRACKERS,
    Pruned,
    Tracker,
    TrackerSpec,
    epoch_metrics,
    flatten,
    summary_metrics,
)
from kit.train import fit
from tests._triggers import assert_documented

# ---- helpers --------------------------------------------------------------------------------


def interrupt_after_first_epoch(start):
    """An epoch hook that presses Ctrl-C once epoch 1 is saved."""

    class Interrupt(Tracker):
        def log_epoch(self, epoch, metrics):
            if epoch == 1:
                raise KeyboardInterrupt

    return Interrupt()


def wandb_records(run_dir: Path) -> list:
    """Every record of the W&B offline run files under ``run_dir/wandb``, in file order.

    A ``.wandb`` file is a 7-byte W&B header and then LevelDB-log records (32 KiB blocks; each
    chunk a 7-byte header: crc32, length, type 1 full / 2 first / 3 middle / 4 last) holding
    ``wandb_internal_pb2.Record`` messages. wandb has no public offline reader, hence this one.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    records = []
    for path in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        data, pos, chunk = path.read_bytes(), 7, b""
        assert data[:4] == b":W&B"
        while pos + 7 <= len(data):
            left = 32768 - pos % 32768
            if left < 7:  # block trailer
                pos += left
                continue
            _, size, kind = struct.unpack("<IHB", data[pos : pos + 7])
            pos += 7
            if kind == 0:  # zero padding up to the block end
                pos += left - 7
                continue
            chunk, pos = chunk + data[pos : pos + size], pos + size
            if kind in (1, 4):
                record = pb.Record()
                record.ParseFromString(chunk)
                records.append((path.parent.name, record))
                chunk = b""
    return records


def _metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "metrics.csv")


# ---- the three trackers, one interrupted-then-resumed run -----------------------------------


@pytest.fixture(scope="module")
def tracked(tiny_base, tmp_path_factory):
    """A 2-epoch run to all three trackers, Ctrl-C after epoch 1, then resumed to the end."""
    tmp = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as mp:
        for var in ("CACHE_DIR", "CONFIG_DIR", "DATA_DIR", "ARTIFACT_DIR"):
            mp.setenv(f"WANDB_{var}", str(tmp / "wandb-home"))
        mp.chdir(tmp)  # MLflow puts a SQLite store's artifacts in ./mlruns
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        cfg = tiny_base.replace(
            output_dir=str(tmp / "runs"),
            max_steps_per_epoch=2,
            track="tensorboard,wandb,mlflow",
            mlflow_uri=f"sqlite:///{tmp / 'mlflow.db'}",
        )
        with pytest.raises(SystemExit):
            fit(cfg, hooks=[interrupt_after_first_epoch])
        (run_dir,) = (tmp / "runs").iterdir()
        first_ids = read_tracker_ids(run_dir)
        run = fit(cfg.replace(resume=str(run_dir)))
    # wandb keeps its service running for the process and names it in os.environ
    # (WANDB_SERVICE), which no monkeypatch undoes: stopped here, so that the tests after these
    # find the environment they started with (tests/_proc.py forks only for such an environment)
    import wandb

    wandb.teardown()
    assert run.status == "complete"
    return cfg, run.run_dir, first_ids


def test_the_tracked_runs_leave_no_wandb_service_behind(tracked):
    assert "WANDB_SERVICE" not in os.environ


def test_tensorboard_event_files_hold_the_epochs_and_pictures(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    _, run_dir, _ = tracked
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    rows = _metrics(run_dir)
    for column, tag in (("val_macro_f1", "val/macro_f1"), ("train_loss", "train/loss")):
        got = events.Scalars(tag)
        assert [e.step for e in got] == [1, 2]  # epoch 1 once, though two processes wrote
        assert [e.value for e in got] == pytest.approx(rows[column].tolist(), rel=1e-6)
    assert [e.step for e in events.Scalars("lr")] == [1, 2]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert events.Scalars("final/val_macro_f1")[0].value == pytest.approx(summary["val_macro_f1"])
    assert {"val_confusion", "curves"} <= set(events.Tags()["images"])


def test_wandb_offline_run_is_one_run_continued_on_resume(tracked):
    _, run_dir, first_ids = tracked
    records = wandb_records(run_dir)
    run_id = read_tracker_ids(run_dir)["wandb"]
    assert first_ids["wandb"] == run_id  # trackers.json kept the id across the resume
    assert {folder.rsplit("-", 1)[1] for folder, _ in records} == {run_id}
    assert len({folder for folder, _ in records}) == 2  # one offline folder per process
    config = {
        u.key: json.loads(u.value_json)
        for _, r in records
        if r.WhichOneof("record_type") == "run"
        for u in r.run.config.update
    }
    assert config["lr"] == 3e-3 and config["model"] == "test_resnet"
    history = {}
    for _, r in records:
        if r.WhichOneof("record_type") == "history":
            item = {
                i.nested_key[0] if i.nested_key else i.key: i.value_json for i in r.history.item
            }
            if "val/macro_f1" in item:
                history[int(item["_step"])] = float(item["val/macro_f1"])
    assert history == dict(zip([1, 2], _metrics(run_dir)["val_macro_f1"], strict=True))
    kinds = [r.WhichOneof("record_type") for _, r in records]
    assert "artifact" in kinds
    summary_keys = {
        (u.nested_key[0] if u.nested_key else u.key)
        for _, r in records
        if r.WhichOneof("record_type") == "summary"
        for u in r.summary.update
    }
    assert {"final/val_macro_f1", "status"} <= summary_keys


def test_mlflow_run_is_continued_with_metrics_params_and_artifacts(tracked):
    from mlflow.tracking import MlflowClient

    cfg, run_dir, first_ids = tracked
    client = MlflowClient(cfg.mlflow_uri)
    run_id = read_tracker_ids(run_dir)["mlflow"]
    assert first_ids["mlflow"] == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    assert run.data.params["lr"] == "0.003" and run.data.params["head"] == "single"
    history = client.get_metric_history(run_id, "val/macro_f1")
    rows = _metrics(run_dir)
    history = sorted(history, key=lambda m: m.step)
    assert [m.step for m in history] == [1, 2]  # epoch 1 once, though two processes logged
    assert [m.value for m in history] == pytest.approx(rows["val_macro_f1"].tolist())
    assert run.data.metrics["final/val_macro_f1"] == pytest.approx(
        json.loads((run_dir / "summary.json").read_text())["val_macro_f1"]
    )
    files = {a.path for a in client.list_artifacts(run_id)}
    assert files == {"val_confusion.png", "curves.png", "submission.csv"}
    experiments = client.search_experiments()
    assert len(client.search_runs([e.experiment_id for e in experiments])) == 1


# ---- failures ---------------------------------------------------------------------------------


class _Broken(Tracker):
    """A tracker whose disk fills up at the first epoch."""

    calls: ClassVar[list[str]] = []

    def __init__(self, start):
        self.calls.append("open")

    def log_epoch(self, epoch, metrics):
        self.calls.append(f"epoch {epoch}")
        raise OSError(errno.ENOSPC, "No space left on device")

    def close(self, status):
        self.calls.append(status)


@pytest.fixture
def broken_tracker():
    _Broken.calls = []
    TRACKERS.register("broken", TrackerSpec("json", _Broken))
    yield _Broken
    TRACKERS.unregister("broken")


def test_failing_tracker_warns_once_and_changes_nothing(tiny_cfg, broken_tracker, caplog):
    plain = fit(tiny_cfg.replace(name="plain"))
    with caplog.at_level(logging.WARNING, logger="kit"):
        run = fit(tiny_cfg.replace(track="broken"))
    warned = [r.getMessage() for r in caplog.records if "tracker broken failed" in r.getMessage()]
    assert len(warned) == 1 and "No space left on device" in warned[0]
    assert broken_tracker.calls == ["open", "epoch 1"]  # dropped after its failure: no more calls
    assert run.status == "complete"
    same = ["epoch", "train_loss", "val_loss", "val_macro_f1", "lr"]
    pd.testing.assert_frame_equal(_metrics(run.run_dir)[same], _metrics(plain.run_dir)[same])


def test_pruning_hook_stops_the_run_marked_pruned(tiny_cfg):
    def prune_at_first(start):
        class Prune(Tracker):
            def log_epoch(self, epoch, metrics):
                assert "val/macro_f1" in metrics
                raise Pruned(f"epoch {epoch}")

        return Prune()

    with pytest.raises(Pruned):
        fit(tiny_cfg.replace(epochs=3), hooks=[prune_at_first])
    (run_dir,) = Path(tiny_cfg.output_dir).iterdir()
    assert json.loads((run_dir / "status.json").read_text())["status"] == "pruned"
    assert (run_dir / "curves.png").is_file() and not (run_dir / "summary.json").exists()
    assert _metrics(run_dir)["epoch"].tolist() == [1]
    from kit.runs import ledger

    assert ledger.load(tiny_cfg.output_dir)["status"].tolist() == ["pruned"]


def test_unknown_or_missing_tracker_is_refused_before_training(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown tracker 'tensorbord' \(did you mean") as err:
        Config(track="tensorbord").validate()
    assert_documented("track-unknown", str(err.value))
    import kit.tracking as base

    real = base.importlib.util.find_spec
    monkeypatch.setattr(
        base.importlib.util, "find_spec", lambda name: None if name == "wandb" else real(name)
    )
    with pytest.raises(ValueError, match="needs the wandb package") as err:
        Config(track="tensorboard, wandb").validate()
    assert EXTRA in str(err.value)
    assert_documented("track-missing-package", str(err.value))
    Config(track="none").validate()


# ---- small pieces -----------------------------------------------------------------------------


def test_names_sent_to_trackers():
    row = {"epoch": 3, "train_loss": 1.0, "val_macro_f1": 0.5, "val_f1_age": 0.2, "lr": 0.1}
    assert epoch_metrics({**row, "seconds": 2}) == {
        "train/loss": 1.0,
        "val/macro_f1": 0.5,
        "val/f1_age": 0.2,
        "lr": 0.1,
        "epoch_seconds": 2.0,
    }
    summary = {"name": "x", "best_epoch": 2, "val_macro_f1": 0.4, "confusion": [[1]], "ok": True}
    assert summary_metrics(summary) == {"final/best_epoch": 2.0, "final/val_macro_f1": 0.4}
    flat = flatten({"loss_kwargs": {"gamma": 2}, "crop": [0.5, 0.6], "head_losses": {}, "a": None})
    assert flat == {"loss_kwargs.gamma": 2, "crop": "[0.5, 0.6]", "head_losses": "{}", "a": None}


def test_tracker_ids_file(tmp_path):
    assert read_tracker_ids(tmp_path) == {}
    write_tracker_id(tmp_path, "wandb", "abc")
    write_tracker_id(tmp_path, "mlflow", "123")
    assert read_tracker_ids(tmp_path) == {"wandb": "abc", "mlflow": "123"}
    (tmp_path / TRACKER_IDS).write_text("[1]")
    with pytest.raises(ValueError, match="trackers.json: expected a mapping") as err:
        read_tracker_ids(tmp_path)
    assert_documented("track-ids-file", str(err.value))


# ---- an MLflow server, started here, killed mid-run ---------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"mlflow server exited with {server.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"mlflow server not up within {seconds} s: {log.read_text()[-2000:]}")


@pytest.mark.slow  # the server alone takes 10-20 s to start here
def test_mlflow_server_gets_the_run_and_its_loss_does_not_stop_training(
    tiny_cfg, tmp_path, monkeypatch, caplog
):
    from mlflow.tracking import MlflowClient

    # no retries: a gone server fails the next call at once instead of after minutes of backoff
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    port, log = _free_port(), tmp_path / "server.log"
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{tmp_path / 'server.db'}",
        "--artifacts-destination",
        str(tmp_path / "artifacts"),
    ]
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=out, start_new_session=True)
    seen: dict[str, list] = {}

    def read_back_then_kill_server(start):
        class Kill(Tracker):
            def log_epoch(self, epoch, metrics):
                if epoch == 1:
                    run_id = read_tracker_ids(start.run_dir)["mlflow"]
                    history = MlflowClient(url).get_metric_history(run_id, "val/macro_f1")
                    seen["epoch 1"] = [(m.step, m.value) for m in history]
                    os.killpg(server.pid, signal.SIGKILL)  # the server's whole process group
                    server.wait(timeout=30)

        return Kill()

    try:
        _wait_healthy(url, server, log)
        cfg = tiny_cfg.replace(track="mlflow", mlflow_uri=url, epochs=3)
        with caplog.at_level(logging.WARNING, logger="kit"):
            run = fit(cfg, hooks=[read_back_then_kill_server])
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
    first = _metrics(run.run_dir)["val_macro_f1"][0]
    assert seen["epoch 1"] == [(1, pytest.approx(first))]
    assert run.status == "complete" and _metrics(run.run_dir)["epoch"].tolist() == [1, 2, 3]
    warned = [r.getMessage() for r in caplog.records if "tracker mlflow failed" in r.getMessage()]
    assert len(warned) == 1 and "log_epoch" in warned[0]


def test_an_mlflow_tracker_that_cannot_open_its_uri_names_the_flag(tmp_path, monkeypatch, caplog):
    """--mlflow-uri sqlite:///FILE/mlflow.db (a file where its folder should be): the warning
    names the flag and the string, as every tracker URI's message does."""
    from kit.tracking import open_trackers

    def cannot_open(start):
        raise FileExistsError(17, "File exists", str(tmp_path / "afile"))

    monkeypatch.setitem(TRACKERS._entries, "mlflow", TrackerSpec("mlflow", cannot_open))
    uri = f"sqlite:///{tmp_path / 'afile' / 'mlflow.db'}"
    with caplog.at_level(logging.WARNING, logger="kit"):
        open_trackers(Config(track="mlflow", mlflow_uri=uri), tmp_path / "run")
    (warned,) = [
        r.getMessage() for r in caplog.records if "tracker mlflow failed" in r.getMessage()
    ]
    assert f"check --mlflow-uri {uri!r}" in warned and "File exists" in warned
    assert_documented("track-failed", warned)
