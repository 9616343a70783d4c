"""Every command a user types ends kit's own errors the same way: exit code 2, one line
``error: <message>`` that names the file, row or field, no Python traceback, and nothing changed
in the run folders already there.

Every recipe and every ``python -m kit.*`` module (found by its ``if __name__ == "__main__"``)
must have a case in :data:`CASES`: a new entry point fails
``test_every_entry_point_has_a_broken_input_case`` until it gets one. The commands run as
subprocesses, a few at a time (each costs a Python start with torch, seconds here).
"""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kit.data.fixture import make_fixture
from tests._runfolders import Preds, RunSpec, one_hot_probs, summary, write_run

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class World:
    """The files the broken commands are pointed at."""

    root: Path
    good: Path  # a data folder
    bad: Path  # the same, with gender 'F' on train.csv line 3
    runs: Path  # existing run folders that no command may change
    finished: Path  # one of them: a finished run


def _world(root: Path) -> World:
    good = make_fixture(root / "good", n_people=6, image_size=(12, 16), seed=0, n_eval_people=1)
    bad = Path(shutil.copytree(good, root / "bad"))
    meta = pd.read_csv(bad / "train" / "train.csv", dtype=str, keep_default_na=False)
    meta.loc[1, "gender"] = "F"
    meta.to_csv(bad / "train" / "train.csv", index=False)
    runs = root / "runs"
    finished = write_run(runs, RunSpec(name="done"))
    (finished / "last.pt").write_bytes(b"weights of the finished run")
    (finished / "best.pt").write_bytes(b"best weights of the finished run")
    (root / "cfg.yaml").write_text("epochs: ten\n")
    (root / "sub.csv").write_text("ImageID,ans\na.jpg,18\nb.jpg,1\n")
    (root / "answers.csv").write_text("ImageID,ans\na.jpg,1\nb.jpg,1\n")
    ids = [f"p{i}/mask1" for i in range(8)]
    preds = Preds(ids, np.arange(8), one_hot_probs(np.arange(8)))
    member = write_run(root / "members", RunSpec(name="m", summary=summary(0.5), preds=preds))
    probs = pd.read_csv(member / "val_probs.csv")
    probs.drop(columns="p7").to_csv(member / "val_probs.csv", index=False)
    return World(root, good, bad, runs, finished)


Argv = Callable[[World], list[str]]
#: command -> (its arguments against a broken input, a fragment its error line must hold)
CASES: dict[str, tuple[Argv, str]] = {
    "recipes/baseline.py": (
        lambda w: ["--data-dir", str(w.bad), "--output-dir", str(w.runs), "--smoke"],
        "train.csv line 3, field 'gender': found 'F'",
    ),
    "recipes/strong_aug.py": (
        lambda w: ["--config", str(w.root / "cfg.yaml"), "--output-dir", str(w.runs)],
        "cfg.yaml: config field 'epochs' got 'ten'",
    ),
    "recipes/multihead_age58.py": (
        lambda w: ["--resume", str(w.finished), "--model", "resnet18"],
        "with changed model: 'mobilenetv3_small_050' -> 'resnet18'",
    ),
    "recipes/cutmix_ema.py": (
        lambda w: ["--data-dir", str(w.bad), "--output-dir", str(w.runs), "--smoke"],
        "train.csv line 3, field 'gender'",
    ),
    "recipes/device_aug.py": (
        lambda w: ["--device-aug", "strnog", "--output-dir", str(w.runs)],
        "config field 'device_aug' is 'strnog' (did you mean 'strong'?)",
    ),
    "recipes/kfold_ensemble.py": (
        lambda w: ["--data-dir", str(w.bad), "--output-dir", str(w.runs), "--smoke"],
        "train.csv line 3, field 'gender'",
    ),
    "recipes/leaderboard.py": (
        lambda w: [
            "--data-dir",
            str(w.good),
            "--output-dir",
            str(w.runs),
            "--smoke",
            "--image-size",
            "4",
            "4",
        ],
        "config field 'image_size' is (4, 4)",
    ),
    "recipes/pseudo_label.py": (
        lambda w: ["--pseudo-labels", str(w.root / "no-run"), "--output-dir", str(w.runs)],
        "no-run",
    ),
    "kit.score": (
        lambda w: [str(w.root / "sub.csv"), "--answers", str(w.root / "answers.csv")],
        "line 2, field ans: found 18",
    ),
    "kit.ensemble": (
        lambda w: [str(w.root / "members" / os.listdir(w.root / "members")[0])],
        "val_probs.csv: missing column(s) ['p7']",
    ),
    "kit.runs": (lambda w: [str(w.runs), "--vs", "nope"], "no run 'nope' in the ledger"),
    "kit.runs.suspects": (
        lambda w: [str(w.runs / "nope"), "--out", str(w.root / "suspects")],
        "nope",
    ),
    "kit.bench": (
        lambda w: ["--data-dir", str(w.bad), "--steps", "1", "--repeats", "1"],
        "train.csv line 3, field 'gender'",
    ),
    "kit.data.fixture": (lambda w: [str(w.good)], "train"),
    "kit.faces": (lambda w: [str(w.bad), "--detector", "boxes"], "field 'gender'"),
    "kit.config_reference": (lambda w: ["--bogus"], "unrecognized arguments: --bogus"),
    "kit.predict": (lambda w: [str(w.runs / "nope")], "nope"),
    "kit.inference": (lambda w: [], "python -m kit.predict RUN_DIR"),
    "kit.cache": (lambda w: ["--list", str(w.root / "no-cache")], "no such cache folder"),
    "kit": (lambda w: ["doctr"], "unknown command 'doctr' (commands: doctor)"),
    "kit.tune": (
        lambda w: [str(w.root / "nope.py"), "--trials", "1", "--param", "lr=0.001:0.1:log"],
        "nope.py not found",
    ),
}


def entry_points() -> set[str]:
    """Every recipe and every module of kit that runs as ``python -m``."""
    found = {f"recipes/{p.name}" for p in (ROOT / "recipes").glob("*.py")}
    for path in (ROOT / "kit").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if any(isinstance(n, ast.If) and "__main__" in ast.unparse(n.test) for n in tree.body):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.add(".".join(parts[:-1] if parts[-1] == "__main__" else parts))
    return found


def test_every_entry_point_has_a_broken_input_case():
    assert sorted(entry_points() - set(CASES)) == [], "add a case to CASES for each"
    assert sorted(set(CASES) - entry_points()) == [], "a case for a command that is gone"


def _checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else ""
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, bool]]:
    """command -> (exit code, stdout + stderr, whether the run folders stayed as they were)."""
    world = _world(tmp_path_factory.mktemp("entry-points"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("KIT_DEBUG", None)

    def run(command: str) -> tuple[int, str]:
        head = [str(ROOT / command)] if command.endswith(".py") else ["-m", command]
        proc = subprocess.run(
            [sys.executable, *head, *CASES[command][0](world)],
            cwd=world.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return proc.returncode, proc.stdout + proc.stderr

    before = _checksums(world.runs)
    with ThreadPoolExecutor(3) as pool:
        results = dict(zip(CASES, pool.map(run, CASES), strict=True))
    unchanged = _checksums(world.runs) == before  # every command has run by now
    return {command: (code, out, unchanged) for command, (code, out) in results.items()}


@pytest.mark.slow  # one fresh Python with torch per entry point: about 100 CPU-seconds in all
@pytest.mark.parametrize("command", sorted(CASES))
def test_a_broken_input_ends_in_one_error_line(command: str, outcomes) -> None:
    code, output, unchanged = outcomes[command]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert code == 2, f"{command}: exit code {code}\n{output[-3000:]}"
    assert "Traceback" not in output, f"{command}:\n{output[-3000:]}"
    assert len(errors) == 1, f"{command}: {len(errors)} error lines\n{output[-3000:]}"
    assert CASES[command][1] in errors[0], f"{command}: {errors[0]!r}"
    assert unchanged, "a command changed an existing run folder"
