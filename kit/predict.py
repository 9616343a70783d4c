"""``python -m kit.predict RUN_DIR [--data-dir DIR] [--tta hflip] [-o submission.csv]``:
predict with a run's best weights and its own transforms, without writing Python.

``--data-dir`` (default: the data the run trained on) is a data folder with ``eval/info.csv``
or that eval folder (its rows, in order), any folder of pictures (sorted; ``ImageID`` the
relative path), or a CSV with a ``path`` column (relative to the CSV or absolute) and optionally
``ImageID``. Beside the submission ``-o`` go ``<name>_probs.csv`` (the columns of a run's
``test_probs.csv``) and, for a person, ``<name>_classes.csv``: ``ImageID,ans,class,confidence``
(with ``--class-probs`` one probability column per class name), since the submission must stay
``ImageID,ans``. A K-fold parent averages its folds' probabilities, as its ``test_probs.csv``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from kit import io
from kit.cli import ArgumentParser, add_debug_flag, run_cli
from kit.config import Config
from kit.data import read_eval
from kit.data._common import IMAGE_EXTENSIONS
from kit.labels import NUM_CLASSES, class_name
from kit.registry import help_lines
from kit.runfolder import (
    BEST,
    REFIT,
    SUBMISSION,
    ensure_run_code,
    fold_run_dirs,
    load_run_code,
    read_config,
    read_summary,
    write_probs,
    write_submission,
)

__all__ = [
    "class_table",
    "classes_path",
    "main",
    "predict_run",
    "read_inputs",
    "run_members",
    "weights_of",
]


def weights_of(run_dir: Path) -> str:
    """The weights file that wrote ``run_dir``'s own submission: ``refit.pt`` after a refit,
    else ``best.pt`` (also for a run that has not finished)."""
    return REFIT if read_summary(run_dir).get("submission_weights") == REFIT else BEST


def run_members(run_dir: str | os.PathLike[str]) -> list[Path]:
    """The folders whose weights predict for ``run_dir``: itself, or a K-fold parent's folds."""
    run_dir = Path(run_dir)
    folds = fold_run_dirs(run_dir, read_summary(run_dir))
    members = folds or [run_dir]
    missing = [m / weights_of(m) for m in members if not (m / weights_of(m)).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{missing[0]} not found; expected a run folder that finished at least one "
            "epoch, or a K-fold parent whose folds did (python -m kit.runs shows their status)"
        )
    return members


def _pictures(folder: Path) -> pd.DataFrame:
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
    )
    if not files:
        raise FileNotFoundError(
            f"{folder}: no pictures ({', '.join(IMAGE_EXTENSIONS)}) and no eval/info.csv; "
            "expected a data folder, an eval folder, a folder of pictures or a CSV of paths"
        )
    ids = [p.relative_to(folder).as_posix() for p in files]
    return pd.DataFrame({"image_id": ids, "ImageID": ids, "path": [str(p) for p in files]})


def _csv(path: Path) -> pd.DataFrame:
    table = pd.read_csv(**io.csv_source(path), dtype=str, keep_default_na=False)
    if "path" not in table.columns:
        raise ValueError(
            f"{path}: no 'path' column (found {list(table.columns)}); expected one picture "
            "path per row, relative to the CSV's folder or absolute, and optionally ImageID"
        )
    paths = [p if Path(p).is_absolute() else str(path.parent / p) for p in table["path"]]
    absent = [(i + 2, p) for i, p in enumerate(paths) if not Path(p).is_file()]
    if absent:
        line, first = absent[0]
        raise FileNotFoundError(
            f"{path}, line {line}, field 'path': {first} not found ({len(absent)} of "
            f"{len(paths)} pictures missing)"
        )
    ids = table["ImageID"] if "ImageID" in table.columns else table["path"]
    return pd.DataFrame({"image_id": ids, "ImageID": ids, "path": paths})


def read_inputs(source: str | os.PathLike[str]) -> pd.DataFrame:
    """The pictures of ``source`` (see the module doc): ``image_id``, ``ImageID``, ``path``."""
    source = Path(source).expanduser()
    if source.is_file():
        return _csv(source)
    if (source / "eval" / "info.csv").is_file():
        return read_eval(source)
    if source.name == "eval" and (source / "info.csv").is_file():
        return read_eval(source.parent)
    if not source.is_dir():
        raise FileNotFoundError(
            f"{source} not found; expected a data folder, an eval folder, a folder of "
            "pictures or a CSV of paths"
        )
    return _pictures(source)


def predict_run(
    run_dir: str | os.PathLike[str],
    frame: pd.DataFrame,
    tta: str | None = None,
    cfg: Config | None = None,
) -> np.ndarray:
    """(n, 18) probabilities of ``run_dir`` (the mean over a K-fold parent's folds) for the
    rows of ``frame``, from the weights of each run's own submission (:func:`weights_of`);
    ``tta`` None uses each run's own ``tta``. ``cfg`` chooses the device,
    batch size and workers."""
    from kit.inference import predict  # torch: not for `python -m kit.predict --help`

    probs = []
    for member in run_members(run_dir):
        mode = tta if tta is not None else str(read_config(member).get("tta", "none"))
        probs.append(predict(member, frame, cfg=cfg, tta=mode, weights=weights_of(member)))
    return np.mean(probs, axis=0)


def _default_source(run_dir: Path) -> Path:
    """The data the run trained on (its fixture when it had no data_dir)."""
    from kit.data.fixture import resolve_data_dir  # the fixture builder: not for --help

    return resolve_data_dir(Config.from_dict(read_config(run_dir, missing_ok=False)))


def probs_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}_probs.csv")


def classes_path(output: Path) -> Path:
    return output.with_name(f"{output.stem}_classes.csv")


def class_table(frame: pd.DataFrame, probs: np.ndarray, class_probs: bool = False) -> pd.DataFrame:
    """``ImageID, ans, class, confidence`` for each row of ``frame`` (its ``ImageID``) from its
    (n, 18) ``probs``; ``class_probs`` adds one column per class name with its probability."""
    ans = probs.argmax(axis=1)
    table = pd.DataFrame(
        {
            "ImageID": frame["ImageID"].to_numpy(),
            "ans": ans,
            "class": [class_name(int(a)) for a in ans],
            "confidence": probs[np.arange(len(ans)), ans],
        }
    )
    if class_probs:
        named = pd.DataFrame(probs, columns=[class_name(c) for c in range(NUM_CLASSES)])
        table = pd.concat([table, named], axis=1)
    return table


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(
        prog="python -m kit.predict",
        description="Predict pictures with a run's (or K-fold parent's) best weights and its "
        "own transforms; write a submission and the probabilities.",
    )
    p.add_argument("run", help="a run folder, or a K-fold parent (its folds are averaged)")
    p.add_argument(
        "--data-dir",
        help="a data folder (eval/info.csv), an eval folder, a folder of pictures or a CSV "
        "with a path column (default: the data the run trained on)",
    )
    p.add_argument(
        "--tta",
        help=f"test-time views, one of {', '.join(help_lines('tta'))} or several joined by + "
        "(default: the run's own)",
    )
    p.add_argument(
        "-o",
        "--output",
        help="submission CSV; probabilities go beside as <name>_probs.csv "
        f"(default: predictions/<run folder>/{SUBMISSION})",
    )
    p.add_argument(
        "--class-probs",
        action="store_true",
        help="also one probability column per class name in <name>_classes.csv",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (default auto)")
    p.add_argument("--batch-size", type=int, default=128, help="pictures per batch (default 128)")
    add_debug_flag(p)
    return p


def _main(argv: Sequence[str]) -> int:
    args = _parser().parse_args(argv)
    run_dir = Path(args.run)
    members = run_members(run_dir)  # before any picture is read
    for member in members:  # what the run's recipe registered (a head, a TTA view, ...)
        ensure_run_code(member, Config.from_dict(read_config(member, missing_ok=False)))
    if args.tta is not None:  # an unknown view fails before any picture is read
        from kit.tta import TTA  # torch: after the command line parsed

        try:
            TTA.check(args.tta)
        except ValueError:  # perhaps a view the run's code registers, its config not naming it
            for member in members:
                load_run_code(member)
            TTA.check(args.tta)
    source = Path(args.data_dir) if args.data_dir else _default_source(members[0])
    frame = read_inputs(source)
    cfg = Config(device=args.device, eval_batch_size=args.batch_size, workers="auto")
    probs = predict_run(run_dir, frame, args.tta, cfg)
    output = Path(args.output) if args.output else Path("predictions") / run_dir.name / SUBMISSION
    write_probs(probs_path(output), frame[["image_id"]], probs)
    write_submission(probs, frame, output)
    named = class_table(frame, probs, args.class_probs)
    io.write_text(
        classes_path(output), named.to_csv(index=False, float_format="%.6g", lineterminator="\n")
    )
    what = f"{len(members)} folds averaged" if len(members) > 1 else "its best.pt"
    print(f"predicted {len(frame)} pictures of {source} with {run_dir} ({what})")
    print(f"wrote {output}, {probs_path(output)} and {classes_path(output)} (class names)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kit.predict``; returns the exit code (2, one ``error:`` line: bad input)."""
    return run_cli(_main, argv, output_fix="pass another -o PATH, or free space")


if __name__ == "__main__":
    sys.exit(main())
