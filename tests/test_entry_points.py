"""Every command a user types ends kit's own errors the same way: exit code 2, one line
``error: <message>`` that names the file, row or field, no Python traceback, and nothing changed
in the run folders already there.

Every recipe gets its cases without a line written here (:func:`recipe_cases`: a misspelt flag,
a data folder that is not there), so a teammate's new recipe is covered as CONTRIBUTING.md says;
:data:`CASES` adds hand-written ones. Every ``python -m kit.*`` module (found by its
``if __name__ == "__main__"``) must have a case there: a new command fails
``test_every_entry_point_has_a_broken_input_case`` until it gets one. A case's id starts with
its command, so ``pytest -k <recipe>`` selects a recipe's cases. The commands run as
subprocesses, a few at a time (each costs a Python start with torch, seconds here).
"""

from __future__ import annotations

import ast
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kit.data.fixture import make_fixture
from tests import _proc
from tests._runfolders import Preds, RunSpec, one_hot_probs, summary, write_run
from tests._triggers import assert_documented

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
    "recipes/device_aug.py": (
        lambda w: ["--device-aug", "strnog", "--output-dir", str(w.runs)],
        "config field 'device_aug' is 'strnog' (did you mean 'strong'?)",
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
    "recipes/poly_loss.py": (
        lambda w: ["--loss", "0.5*poly+0.5*f1", "--output-dir", str(w.runs)],
        "unknown loss 'poly' (did you mean 'poly1'?)",
    ),
    "recipes/torchvision_resnet18.py": (
        lambda w: ["--model", "torchvision/resnet81", "--output-dir", str(w.runs)],
        "did you mean 'torchvision/resnet18'",
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


def recipe_cases(recipes: Path = ROOT / "recipes") -> dict[str, tuple[Argv, str]]:
    """Two broken inputs every recipe gets, derived from the files in ``recipes``."""
    cases: dict[str, tuple[Argv, str]] = {}
    for path in sorted(recipes.glob("*.py")):
        command = f"recipes/{path.name}"
        cases[f"{command} bad-flag"] = (
            lambda w: ["--epochz", "1", "--output-dir", str(w.runs)],
            "unrecognized arguments: --epochz",
        )
        # --no-pretrained: pretrained weights are looked up before the data is read
        cases[f"{command} no-data"] = (
            lambda w: [
                *("--data-dir", str(w.root / "no-data"), "--output-dir", str(w.runs)),
                "--no-pretrained",
            ],
            "no-data: data folder not found",
        )
    return cases


ALL_CASES = {**recipe_cases(), **CASES}


def command_of(case: str) -> str:
    """The command a case id runs: ``recipes/x.py no-data`` runs ``recipes/x.py``."""
    return case.split(" ")[0]


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
    covered = {command_of(case) for case in ALL_CASES}
    assert sorted(entry_points() - covered) == [], "add a case to CASES for each"
    assert sorted(covered - entry_points()) == [], "a case for a command that is gone"


def test_a_new_recipe_gets_its_cases_without_a_line_written(tmp_path: Path):
    (tmp_path / "focal_age.py").write_text("import kit\n")
    cases = recipe_cases(tmp_path)
    assert sorted(cases) == ["recipes/focal_age.py bad-flag", "recipes/focal_age.py no-data"]
    assert {command_of(case) for case in cases} == {"recipes/focal_age.py"}


def _checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        if p.is_file()
        else ""
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture(scope="module")
def outcomes(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> dict[str, tuple[int, str, bool]]:
    """case -> (exit code, stdout + stderr, whether the run folders stayed as they were), for
    the cases this session selected (``-k <recipe>`` runs that recipe's alone)."""
    world = _world(tmp_path_factory.mktemp("entry-points"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("KIT_DEBUG", None)

    def run(command: str) -> tuple[int, str]:
        what = command_of(command)
        head = [str(ROOT / what)] if what.endswith(".py") else ["-m", what]
        proc = _proc.run(
            [sys.executable, *head, *ALL_CASES[command][0](world)],
            cwd=world.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        return proc.returncode, proc.stdout + proc.stderr

    chosen = [
        item.callspec.params["command"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_a_broken_input_ends_in_one_error_line"
    ]
    before = _checksums(world.runs)
    with ThreadPoolExecutor(3) as pool:
        results = dict(zip(chosen, pool.map(run, chosen), strict=True))
    unchanged = _checksums(world.runs) == before  # every command has run by now
    return {command: (code, out, unchanged) for command, (code, out) in results.items()}


@pytest.mark.slow  # one fresh Python with torch per entry point: about 100 CPU-seconds in all
@pytest.mark.parametrize("command", sorted(ALL_CASES))
def test_a_broken_input_ends_in_one_error_line(command: str, outcomes) -> None:
    code, output, unchanged = outcomes[command]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert code == 2, f"{command}: exit code {code}\n{output[-3000:]}"
    assert "Traceback" not in output, f"{command}:\n{output[-3000:]}"
    assert len(errors) == 1, f"{command}: {len(errors)} error lines\n{output[-3000:]}"
    assert ALL_CASES[command][1] in errors[0], f"{command}: {errors[0]!r}"
    assert unchanged, "a command changed an existing run folder"


# ---- CSVs as spreadsheets write them, bad face-boxes files: in-process, one case each ------

#: a face-boxes file's bad row -> the fragment its error line names (file, line, field)
BAD_BOXES: dict[str, tuple[str, str]] = {
    "infinite": ("{id},1,2,inf,9", "faces.csv, line 2, field x1: found 'inf'"),
    "NaN": ("{id},nan,2,3,9", "faces.csv, line 2, field x0: found 'nan'"),
    "short row": ("{id},1,2", "faces.csv, line 2: found 3 fields, expected 5"),
}


def _boxes_argv(command: str, w: World, boxes: Path) -> list[str]:
    cache = ["--cache-dir", str(w.root / "cache")]
    if command == "kit.faces":
        return [str(w.good), "--detector", "boxes", "--face-boxes", str(boxes), *cache]
    face = ["--crop-mode", "face", "--face-detector", "boxes", "--face-boxes", str(boxes)]
    return ["--data-dir", str(w.good), "--output-dir", str(w.runs), "--smoke", *face, *cache]


def _main_of(command: str) -> Callable[[list[str]], object]:
    if command == "kit.faces":
        from kit.faces.__main__ import main

        return main
    import runpy

    return runpy.run_path(str(ROOT / command))["main"]


def _exit_code(main: Callable[[list[str]], object], argv: list[str]) -> int:
    try:
        return int(main(argv) or 0)  # type: ignore[call-overload]
    except SystemExit as err:
        return int(err.code or 0)


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return _world(tmp_path_factory.mktemp("entry-points-small"))


@pytest.mark.parametrize("bad", list(BAD_BOXES))
@pytest.mark.parametrize("command", ["kit.faces", "recipes/baseline.py"])
def test_a_bad_face_boxes_file_ends_every_reader_in_one_error_line(
    small_world: World, command: str, bad: str, capsys
) -> None:
    w = small_world
    first = (w.good / "train" / "faces.csv").read_text().splitlines()[1].split(",")[0]
    row, fragment = BAD_BOXES[bad]
    boxes = w.root / bad.replace(" ", "_") / "faces.csv"
    boxes.parent.mkdir(exist_ok=True)
    boxes.write_text("image_id,x0,y0,x1,y1\n" + row.format(id=first) + "\n")
    before = _checksums(w.runs)
    code = _exit_code(_main_of(command), _boxes_argv(command, w, boxes))
    out = capsys.readouterr()
    errors = [line for line in out.err.splitlines() if line.startswith("error:")]
    assert code == 2, out.err[-3000:]
    assert "Traceback" not in out.err + out.out
    assert len(errors) == 1 and fragment in errors[0], errors
    assert "all empty for a picture without a face" in errors[0]
    assert _checksums(w.runs) == before


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "cp1252"])
def test_kit_score_reads_submissions_as_spreadsheets_save_them(
    small_world: World, tmp_path: Path, encoding: str, capsys
) -> None:
    """UTF-8 with a byte-order mark and UTF-16 are read; a legacy code page is one error line
    naming the file, its line and the fix."""
    from kit.score import main as score_main

    sub, answers = tmp_path / "sub.csv", tmp_path / "answers.csv"
    accent = "é" if encoding == "cp1252" else ""
    sub.write_bytes(f"ImageID;ans\r\na.jpg;1\r\nb{accent}.jpg;2\r\n".encode(encoding))
    answers.write_text("ImageID,ans\na.jpg,1\nb.jpg,2\n")
    code = score_main([str(sub), "--answers", str(answers)])
    out = capsys.readouterr()
    if encoding == "cp1252":
        errors = [line for line in out.err.splitlines() if line.startswith("error:")]
        assert code == 2 and len(errors) == 1, out.err
        assert f"{sub} line 3: byte b'\\xe9' is not UTF-8" in errors[0]
        assert 'save it as "CSV UTF-8"' in errors[0]
    else:
        assert code == 0, out.err
        assert "1.0000" in out.out or "1.000" in out.out, out.out


def _resave(path: Path, encode: Callable[[str], bytes]) -> None:
    path.write_bytes(encode(path.read_text(encoding="utf-8")))


def _decimal_commas(text: str) -> str:
    """``;`` separators, and each box's x0 with a decimal comma (``6`` -> ``6,4``: the same
    pixel once rounded), as German or French Excel saves the file."""
    head, *rows = text.replace(",", ";").splitlines()
    rows = [re.sub(r"^([^;]*;\d+)(?=;)", r"\1,4", row) for row in rows]
    return "\r\n".join([head, *rows]) + "\r\n"


#: how a data folder's CSVs may be saved (train.csv, info.csv, faces.csv all alike), or how
#: its folders may be named, that every reader accepts
SAVED_DATA: dict[str, Callable[[Path], None]] = {
    "BOM": lambda csv: _resave(csv, lambda t: t.encode("utf-8-sig")),
    "UTF-16": lambda csv: _resave(csv, lambda t: t.replace("\n", "\r\n").encode("utf-16")),
    "semicolons, decimal commas": lambda csv: _resave(
        csv,
        lambda t: (_decimal_commas(t) if csv.name == "faces.csv" else t.replace(",", ";")).encode(
            "utf-8-sig"
        ),
    ),
}


@pytest.mark.parametrize("saved", [*SAVED_DATA, "NFD person folder"])
def test_a_data_folder_saved_as_spreadsheets_and_phones_write_it_is_read(
    small_world: World, tmp_path: Path, saved: str, capsys
) -> None:
    """kit.faces reads train.csv, info.csv and the face boxes of a data folder whose CSVs
    Excel re-saved, or whose person folder macOS named in NFD: every box is found."""
    from kit.faces.__main__ import main

    data = Path(shutil.copytree(small_world.good, tmp_path / "data"))
    csvs = [data / "train" / "train.csv", data / "eval" / "info.csv", data / "train" / "faces.csv"]
    if saved in SAVED_DATA:
        for csv in csvs:
            SAVED_DATA[saved](csv)
    else:  # one person folder named 'Asiàn' decomposed, the CSVs (as spreadsheets) composed
        folder = sorted((data / "train" / "images").iterdir())[0]
        nfc = folder.name.replace("Asian", "Asi\u00e0n")
        folder.rename(folder.with_name(unicodedata.normalize("NFD", nfc)))
        for csv in csvs[::2]:
            csv.write_text(csv.read_text(encoding="utf-8").replace(folder.name, nfc))
    code = _exit_code(main, [str(data), "--detector", "boxes", "--cache-dir", str(tmp_path)])
    out = capsys.readouterr()
    assert code == 0, out.err[-3000:]
    # every picture of the folder found in the boxes file, none fell back to the centre
    assert re.search(r"(\d+) found, 0 centre-crop fallback \(0%\) of \1 pictures", out.out), out.out


_FAILING_LOSS = """
import kit
from kit import Config


@kit.register_loss("mine")
def mine():
    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")


def main(argv=None):
    kit.main(Config(name="mine", model="test_resnet", loss="mine"), argv=argv)
"""


def test_a_recipes_own_piece_failing_is_one_error_line_naming_it(
    small_world: World, tmp_path: Path, capsys
) -> None:
    """User code that fails, through a recipe's command line: exit 2, one error line naming
    the piece and where it is defined, no traceback, the run folders there before untouched."""
    import runpy

    w = small_world
    recipe = tmp_path / "failing_loss.py"
    recipe.write_text(_FAILING_LOSS)
    before = _checksums(w.runs)
    try:
        main = runpy.run_path(str(recipe), run_name="failing_loss")["main"]
        argv = ["--data-dir", str(w.good), "--output-dir", str(w.runs), "--smoke"]
        code = _exit_code(main, argv)
    finally:
        from kit.losses import LOSSES

        LOSSES.unregister("mine")
    out = capsys.readouterr()
    errors = [line for line in out.err.splitlines() if line.startswith("error:")]
    assert code == 2, out.err[-3000:]
    assert "Traceback" not in out.err + out.out
    assert len(errors) == 1 and "loss 'mine' (your code, in failing_loss) failed" in errors[0]
    after = _checksums(w.runs)
    assert {k: after.get(k) for k in before} == before, "a run folder there before changed"


#: commands that read a data folder's train.csv -> their arguments against the data folder
TRAIN_CSV_READERS: dict[str, Callable[[Path, Path], list[str]]] = {
    "recipes/baseline.py": lambda d, out: [
        *("--data-dir", str(d), "--output-dir", str(out), "--smoke"),
    ],
    "kit.faces": lambda d, out: [str(d), "--detector", "boxes", "--cache-dir", str(out)],
    "kit.bench": lambda d, out: [
        *("--data-dir", str(d), "--steps", "1", "--repeats", "1", "--json", str(out / "b.json")),
    ],
}


def _train_csv_main(command: str) -> Callable[[list[str]], object]:
    if command == "kit.bench":
        from kit.bench.__main__ import main

        return main
    return _main_of(command)


@pytest.mark.parametrize("command", list(TRAIN_CSV_READERS))
def test_a_train_csv_in_a_legacy_code_page_is_one_error_line(
    small_world: World, tmp_path: Path, command: str, capsys
) -> None:
    """Excel's plain "CSV" on Windows (Windows-1252): one line naming the file, the line of
    the first byte that is not UTF-8 and the fix; nothing written."""
    data = Path(shutil.copytree(small_world.good, tmp_path / "data"))
    csv = data / "train" / "train.csv"
    text = csv.read_text(encoding="utf-8").splitlines()
    text[2] = text[2].replace("Asian", "Asiàn")
    csv.write_bytes("\r\n".join(text).encode("cp1252"))
    out = tmp_path / "out"
    code = _exit_code(_train_csv_main(command), TRAIN_CSV_READERS[command](data, out))
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert code == 2, captured.err[-3000:]
    assert "Traceback" not in captured.err + captured.out
    assert len(errors) == 1, errors
    assert f"{csv} line 3: byte b'\\xe0' is not UTF-8 text" in errors[0]
    assert 'save it as "CSV UTF-8"' in errors[0]
    assert not out.exists() or not any(out.rglob("*.*")), "nothing may be written"


# ---- configuration strings of the tools kit drives: one line naming the flag ------------------

#: (command, its arguments, what its one error line must hold)
TOOL_STRINGS: dict[str, tuple[str, Callable[[World, Path], list[str]], str]] = {
    "storage-unknown-scheme": (
        "kit.tune",
        lambda w, out: ["--storage", "foo://x", *_tune_argv(w, out)],
        "--storage 'foo://x': no database driver for 'foo'",
    ),
    "storage-missing-driver": (
        "kit.tune",
        lambda w, out: ["--storage", "postgresql+nosuchdriver://u@h/db", *_tune_argv(w, out)],
        "no database driver for 'postgresql+nosuchdriver'",
    ),
    "storage-not-a-url": (
        "kit.tune",
        lambda w, out: ["--storage", "runs/optuna.db", *_tune_argv(w, out)],
        "--storage 'runs/optuna.db' is not a database URL",
    ),
    "storage-folder-is-a-file": (
        "kit.tune",
        lambda w, out: [
            *("--storage", f"sqlite:///{w.root / 'cfg.yaml' / 'study.db'}", *_tune_argv(w, out))
        ],
        "cfg.yaml of the SQLite file (a file is in the way where a folder is expected); pass "
        "--storage sqlite:///PATH",
    ),
    "mlflow-uri-unknown-scheme": (
        "recipes/baseline.py",
        lambda w, out: [
            *("--data-dir", str(w.good), "--output-dir", str(out), "--smoke"),
            *("--track", "mlflow", "--mlflow-uri", "foo://x"),
        ],
        "(--mlflow-uri) is 'foo://x': MLflow has no tracking store for the scheme 'foo'",
    ),
}


def _tune_argv(w: World, out: Path) -> list[str]:
    recipe = str(ROOT / "recipes" / "baseline.py")
    flags = ["--data-dir", str(w.good), "--output-dir", str(out), "--smoke"]
    return [recipe, "--trials", "1", "--param", "lr=log:1e-4:1e-2", *flags]


@pytest.mark.parametrize("case", list(TOOL_STRINGS))
def test_a_bad_storage_url_or_tracker_uri_is_one_error_line_naming_the_flag(
    small_world: World, tmp_path: Path, case: str, capsys
) -> None:
    command, argv, fragment = TOOL_STRINGS[case]
    if command == "kit.tune":
        from kit.tune.__main__ import main
    else:
        main = _main_of(command)
    out = tmp_path / "runs"
    code = _exit_code(main, argv(small_world, out))
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert code == 2, captured.err[-3000:]
    assert "Traceback" not in captured.err + captured.out
    assert len(errors) == 1 and fragment in errors[0], errors
    assert not out.exists() or not any(out.iterdir()), "nothing may be written"
    if case == "storage-unknown-scheme":
        assert_documented("tune-storage", errors[0])
    if case == "storage-folder-is-a-file":
        assert_documented("tune-storage-folder", errors[0])
    if case == "mlflow-uri-unknown-scheme":
        assert_documented("track-mlflow-uri", errors[0])


# ---- Ctrl-C during start-up ---------------------------------------------------------------------

_INTERRUPTED_IMPORT = (
    "import kit\n"
    "import os, signal\n"
    "os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the recipe still imports\n"
    "import json\n"
    "print('main ran')\n"
)


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "KIT_DEBUG=1"])
def test_ctrl_c_while_a_command_imports_is_one_line_and_exit_130(tmp_path, debug):
    """A recipe's (or ``python -m kit.*``'s: ``import kit`` comes first there too) Ctrl-C
    before its main runs: one ``interrupted`` line, code 130; ``--debug`` keeps the
    traceback. A fresh interpreter (about 0.1 s: no torch), as only one shows this."""
    recipe = tmp_path / "recipe.py"
    recipe.write_text(_INTERRUPTED_IMPORT)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("KIT_DEBUG", None)
    if debug:
        env["KIT_DEBUG"] = "1"
    proc = subprocess.run(
        [sys.executable, str(recipe)], env=env, capture_output=True, text=True, timeout=60
    )
    # Python ends an uncaught Ctrl-C by SIGINT itself: a shell shows 130, subprocess -2
    assert proc.returncode in (130, -signal.SIGINT), proc.stderr
    assert "main ran" not in proc.stdout
    if debug:
        assert "Traceback" in proc.stderr and "KeyboardInterrupt" in proc.stderr
    else:
        assert proc.stderr == "interrupted\n"
