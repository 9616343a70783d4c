"""kit.score: scores against sklearn, the confusion PNG, bad submissions (kit.plot: test_plot)."""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, f1_score
from sklearn.metrics import confusion_matrix as sk_confusion

from kit import io as kio
from kit.errors import KIT_ERRORS
from kit.runfolder import VAL_CONFUSION
from kit.score import main as score_main
from kit.score import score_submission
from tests import _proc
from tests._runfolders import Preds, RunSpec, one_hot_probs, summary, write_run
from tests._triggers import assert_documented

ROOT = Path(__file__).resolve().parents[1]
IDS = [f"{i:040x}.jpg" for i in range(300)]


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(7)
    truth = rng.integers(0, 18, len(IDS))
    pred = np.where(rng.random(len(IDS)) < 0.6, truth, rng.integers(0, 18, len(IDS)))
    answers = tmp_path / "eval" / "answers.csv"
    answers.parent.mkdir()
    pd.DataFrame({"ImageID": IDS, "ans": truth}).to_csv(answers, index=False)
    sub = tmp_path / "sub.csv"
    frame = pd.DataFrame({"ImageID": IDS, "ans": pred})
    frame.sample(frac=1, random_state=1).to_csv(sub, index=False)  # rows out of order
    return sub, answers, truth, pred


def test_scores_match_sklearn(files):
    sub, answers, truth, pred = files
    s = score_submission(sub, answers)
    expected = f1_score(truth, pred, labels=range(18), average="macro", zero_division=0)
    assert s["macro_f1"] == pytest.approx(expected)
    assert s["accuracy"] == pytest.approx(accuracy_score(truth, pred))
    assert np.array_equal(s["confusion"], sk_confusion(truth, pred, labels=range(18)))
    assert s["f1_mask"] == pytest.approx(f1_score(truth // 6, pred // 6, average="macro"))
    assert s["n"] == len(IDS) and s["same_order"] is False


def test_cli_prints_scores_and_writes_png(files):
    sub, answers, truth, pred = files
    out = _proc.run(
        [sys.executable, "-m", "kit.score", str(sub), "--answers", str(answers)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    f1 = f1_score(truth, pred, labels=range(18), average="macro", zero_division=0)
    assert f"macro F1  {f1:.4f}" in out.stdout
    assert "not_wear/female/>=60" in out.stdout and "true\\pred" in out.stdout
    assert "WARNING: rows are not in the answers' order" in out.stdout
    assert_documented("score-order", out.stdout)
    png = sub.with_name("sub_confusion.png")
    with Image.open(png) as img:
        img.verify()
    with Image.open(png) as img:
        assert img.format == "PNG"
        assert min(img.size) >= 18 * 40  # room for 18 readable rows and columns


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda df: df.iloc[2:],
            r"2 ImageID\(s\) of the answers missing \('0+\.jpg', '0+1\.jpg'\)",
        ),
        (lambda df: df.iloc[1:], r"1 ImageID\(s\) of the answers missing"),
        (
            lambda df: pd.concat([df, pd.DataFrame({"ImageID": ["extra.jpg"], "ans": [1]})]),
            r"1 ImageID\(s\) not in the answers \('extra.jpg'\)",
        ),
        (lambda df: df.assign(ans=df.ans.where(df.index != 3, 18)), r"line 5, field ans: .*0..17"),
        (lambda df: df.assign(ans=df.ans.where(df.index != 0)), r"line 2, field ans: found ''"),
        (lambda df: df.rename(columns={"ans": "label"}), r"missing column\(s\) \['ans'\]"),
        (
            lambda df: df.assign(ImageID=IDS[:1] * len(df)),
            r"line 3, field ImageID: .*more than once",
        ),
    ],
)
def test_bad_submissions_are_named(files, edit, message):
    sub, answers, _, _ = files
    df = pd.read_csv(answers, dtype={"ImageID": str})
    edit(df).to_csv(sub, index=False)
    with pytest.raises(ValueError, match=message) as err:
        score_submission(sub, answers)
    assert "sub.csv" in str(err.value)
    if message == r"1 ImageID\(s\) of the answers missing":  # the page's example
        assert_documented("score-missing-ids", str(err.value))


def _cli(capsys, *args: str) -> subprocess.CompletedProcess:
    """``python -m kit.score ARGS`` run in this process (its main is what the command runs;
    a fresh interpreter per call cost seconds): exit code, stdout, stderr."""
    code = score_main(list(args))
    seen = capsys.readouterr()
    return subprocess.CompletedProcess(["kit.score", *args], code, seen.out, seen.err)


def test_cli_refuses_a_bad_submission(files, capsys):
    sub, answers, _, _ = files
    sub.write_text("ImageID,ans\nnope.jpg,3\n")
    out = _cli(capsys, str(sub), "--answers", str(answers))
    assert out.returncode == 2 and "sub.csv" in out.stderr and "300 ImageID(s)" in out.stderr
    assert_documented("score-extra-ids", out.stderr)
    assert not sub.with_name("sub_confusion.png").exists()


# ---- a run's own validation report, the optional picture, errors, pipes (issues #15, #16) -----


def _val_run(root: Path, **spec) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    truth = np.arange(72) % 18
    pred = np.where(rng.random(72) < 0.7, truth, rng.integers(0, 18, 72))
    ids = [f"p{i // 4}/mask{i % 4}" for i in range(72)]
    preds = Preds(ids, truth, one_hot_probs(pred, 0.8))
    return write_run(root, RunSpec(preds=preds, summary=summary(0.5), **spec)), truth, pred


def test_run_dir_prints_its_validation_report_and_draws_it(tmp_path, capsys):
    run, truth, pred = _val_run(tmp_path)
    out = _cli(capsys, str(run))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{run.name} (validation)")
    f1 = f1_score(truth, pred, labels=range(18), average="macro", zero_division=0)
    assert f"macro F1  {f1:.4f}" in out.stdout and "true\\pred" in out.stdout
    per_class = f1_score(truth, pred, labels=range(18), average=None, zero_division=0)
    assert f"{per_class[7]:>10.4f}" in out.stdout.splitlines()[12]  # class 7's row
    mask = f1_score(truth // 6, pred // 6, average="macro")
    assert f"mask {mask:.4f}" in out.stdout
    with Image.open(run / VAL_CONFUSION) as img:
        assert img.format == "PNG"


def test_kfold_parent_scores_out_of_fold(tmp_path, capsys):
    folds = [{"fold": k, "run_dir": f"f{k}", "val_macro_f1": 0.5} for k in range(3)]
    run, truth, pred = _val_run(tmp_path, name="cv_kfold")
    body = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**body, "folds": folds}))
    out = _cli(capsys, str(run), "--png", str(tmp_path / "cm.png"))
    assert out.returncode == 0 and "(out-of-fold over 3 folds)" in out.stdout
    f1 = f1_score(truth, pred, labels=range(18), average="macro", zero_division=0)
    assert f"macro F1  {f1:.4f}" in out.stdout
    assert (tmp_path / "cm.png").is_file() and not (run / VAL_CONFUSION).exists()


def test_a_run_without_val_probs_is_refused_naming_the_file(tmp_path, capsys):
    ids = [f"{k:040x}.jpg" for k in range(6)]
    val, test = one_hot_probs(np.array([0])), one_hot_probs(np.arange(6))
    preds = Preds(["p0/mask1"], np.array([0]), val, ids, test)
    run = write_run(tmp_path, RunSpec(name="a", summary=summary(0.5), preds=preds))
    (run / "val_probs.csv").unlink()  # test_probs.csv stays: a run that never validated
    out = _cli(capsys, str(run))
    assert out.returncode == 2 and str(run) in out.stderr
    assert_documented("score-no-val", out.stderr)


def test_a_picture_that_cannot_be_written_only_warns(files, tmp_path, capsys):
    sub, answers, truth, pred = files
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = _cli(capsys, str(sub), "--answers", str(answers), "--png", str(blocker / "cm.png"))
    assert out.returncode == 0, out.stderr
    f1 = f1_score(truth, pred, labels=range(18), average="macro", zero_division=0)
    assert f"macro F1  {f1:.4f}" in out.stdout and "wrote" not in out.stdout
    assert out.stderr.startswith("warning: no confusion picture: cannot write")
    assert_documented("score-png-unwritable", out.stderr)
    assert "pass --png PATH" in out.stderr and "--output-dir" not in out.stderr


def test_a_read_only_folder_only_warns(files, monkeypatch, capsys):
    sub, answers, _, _ = files
    monkeypatch.setattr(kio.os, "replace", _raise(OSError(errno.EROFS, "Read-only file system")))
    assert score_main([str(sub), "--answers", str(answers)]) == 0
    seen = capsys.readouterr()
    assert "macro F1" in seen.out and not sub.with_name("sub_confusion.png").exists()
    assert "the file system is read-only" in seen.err and "--png" in seen.err


def _raise(err: BaseException):
    def fail(*args, **kwargs):
        raise err

    return fail


def test_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, capsys, monkeypatch):
    sub = tmp_path / "sub.csv"
    sub.write_text("ImageID,ans\na.jpg,1\n")
    out = _cli(capsys, str(sub))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1
    assert "pass --answers" in out.stderr
    assert_documented("score-needs-answers", out.stderr)
    unfinished = write_run(tmp_path, RunSpec(name="r", status="running"))
    out = _cli(capsys, str(unfinished))
    assert out.returncode == 2 and "no val_probs.csv or test_probs.csv" in out.stderr
    # with --debug or KIT_DEBUG=1 the error propagates: a process shows its traceback, exit 1
    # (tests/test_runs.py checks it on a real process; every command ends through kit.cli.run_cli)
    with pytest.raises(KIT_ERRORS, match="pass --answers"):
        score_main([str(sub), "--debug"])
    monkeypatch.setenv("KIT_DEBUG", "1")
    with pytest.raises(KIT_ERRORS, match="pass --answers"):
        score_main([str(sub)])


def test_a_closed_pipe_ends_quietly(files):
    sub, answers, _, _ = files
    cmd = [sys.executable, "-m", "kit.score", str(sub), "--answers", str(answers)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT) as proc:
        proc.stdout.close()  # like `| head` that has read enough, before kit prints anything
        err = proc.stderr.read().decode()
        proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
