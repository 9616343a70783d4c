"""Label-noise finder: the people and pictures whose out-of-fold probability of their own
label is lowest, by task, as a fixes CSV to review and a contact sheet.

Gender and age belong to a person, so a person's pictures are pooled (mean probability of
the labelled value over the person's pictures); the mask belongs to a picture. The 18-way
probabilities are marginalised with :func:`kit.labels.heads_from_joint`; a per-task run (mask,
gender or age only) has its task's probabilities and is ranked by that task alone. Out-of-fold
rows (a K-fold parent) cover every training person; a holdout run covers its validation people.

``python -m kit.runs suspects RUN [--top 20] [--out suspects/<run>]`` writes:

- ``fixes.csv``: the suspects whose predicted value differs from the label, in the columns of
  the user fixes file (``person_id,field,value,source``, docs/data.md) plus review columns; a
  teammate deletes the rows that are wrong and passes the file to ``--fixes``;
- ``suspects.csv``: every listed suspect (task, person, picture, p_own, label, predicted);
- ``suspects.png``: the top suspects' pictures with their label and the predicted value.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from kit import cli, io
from kit.cli import add_debug_flag, run_cli
from kit.labels import TASKS, VALUE_NAMES, decode, heads_from_joint
from kit.plot import picture_sheet, train_picture_files
from kit.runfolder import (
    VAL_PROBS,
    read_config,
    read_task_predictions,
    read_val,
    read_val_keys,
)

__all__ = ["SUSPECT_COLUMNS", "Suspects", "find_suspects", "fixes_table", "main"]

SUSPECT_COLUMNS = ["task", "person_id", "image_id", "p_own", "label", "predicted"]
# Suggested age of a person whose predicted age group differs from the labelled one: the age
# of the predicted group closest to the labelled group (the mildest change that moves it).
_AGE_BELOW, _AGE_ABOVE = {0: "29", 1: "59"}, {1: "30", 2: "60"}
# A labelled incorrect / not-wear picture predicted as the other is what swap_mask fixes.
_SWAPS = {(1, 2), (2, 1)}


@dataclass
class Suspects:
    """The suspects of one run: ``table`` in :data:`SUSPECT_COLUMNS`, lowest p_own first
    within each task; ``run`` is the run folder."""

    run: Path
    table: pd.DataFrame


def _pictures(run: Path) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Each validation picture's own value and probabilities of every task the run predicts
    (all three, or a per-task run's one), and those tasks."""
    per_task = read_task_predictions(run)
    if per_task is None:
        split, keys = read_val(run / VAL_PROBS)
        marg = dict(zip(TASKS, heads_from_joint(split.probs), strict=True))
    else:
        task, split = per_task[:2]
        if split is None:
            raise FileNotFoundError(
                f"{run}: no {VAL_PROBS}; suspects are ranked by validation probabilities: "
                "give a run folder that finished validation"
            )
        marg = {task: split.probs}
        keys = read_val_keys(run).take(split.ids)
    own = dict(zip(TASKS, decode(split.truth), strict=True))
    frame = pd.DataFrame({"image_id": split.ids, "person_id": keys.person_ids})
    for task in marg:
        frame[f"{task}_own"] = own[task]
        for v in range(marg[task].shape[1]):
            frame[f"{task}_p{v}"] = marg[task][:, v]
    return frame, tuple(marg)


def _ranked(rows: pd.DataFrame, task: str, top: int) -> pd.DataFrame:
    rows = rows.sort_values(["p_own", "person_id", "image_id"], kind="stable").head(top)
    names = VALUE_NAMES[task]
    label, predicted = ([names[v] for v in rows[c]] for c in ("own", "pred"))
    return rows.assign(task=task, label=label, predicted=predicted)


def find_suspects(run: str | Path, top: int = 20) -> Suspects:
    """The ``top`` lowest-p_own suspects of each task in ``run``'s val_probs.csv (a per-task
    run's: of its task)."""
    if top < 1:
        raise ValueError(f"--top must be at least 1, got {top}")
    pics, tasks = _pictures(Path(run))
    parts = []
    for task in tasks:
        cols = [c for c in pics.columns if c.startswith(f"{task}_p")]
        if task == "mask":  # a picture's own label
            keys = pics[["person_id", "image_id"]].assign(example=pics["image_id"])
            probs, own = pics[cols].to_numpy(), pics[f"{task}_own"].to_numpy()
        else:  # a person's: pool the pictures
            groups = pics.groupby("person_id", sort=True)
            pooled = groups[[*cols, f"{task}_own"]].mean()
            example = groups["image_id"].first().to_numpy()
            keys = pd.DataFrame({"person_id": pooled.index, "image_id": "", "example": example})
            probs = pooled[cols].to_numpy()
            own = pooled[f"{task}_own"].round().astype(int).to_numpy()
        rows = keys.assign(p_own=probs[np.arange(len(own)), own], own=own, pred=probs.argmax(1))
        parts.append(_ranked(rows, task, top))
    table = pd.concat(parts, ignore_index=True)
    return Suspects(Path(run), table[[*SUSPECT_COLUMNS, "own", "pred", "example"]])


def _fix(row: pd.Series) -> tuple[str, str] | None:
    """(field, value) of the fix a suspect suggests, or None when no fix field expresses it."""
    own, pred = int(row["own"]), int(row["pred"])
    if own == pred:
        return None
    if row["task"] == "gender":
        return "gender", VALUE_NAMES["gender"][pred]
    if row["task"] == "age":
        return "age", (_AGE_BELOW if pred < own else _AGE_ABOVE)[pred]
    return ("swap_mask", "1") if (own, pred) in _SWAPS else None


def fixes_table(suspects: Suspects) -> pd.DataFrame:
    """The suggested fixes, one per person and field, in the user fixes file's columns
    (``person_id,field,value,source``) plus the review columns of the suspect."""
    rows = []
    for _, row in suspects.table.iterrows():
        fix = _fix(row)
        if fix is None:
            continue
        where = f" picture {row['image_id']}" if row["image_id"] else ""
        source = (
            f"suspect in {suspects.run.name}{where}: p({row['label']}) = {row['p_own']:.3f}, "
            f"predicted {row['predicted']}; review before use"
        )
        rows.append({"field": fix[0], "value": fix[1], **row, "source": source})
    cols = ["person_id", "field", "value", "source", *SUSPECT_COLUMNS[:1], *SUSPECT_COLUMNS[2:]]
    table = pd.DataFrame(rows, columns=cols)
    return table.drop_duplicates(["person_id", "field"], keep="first").reset_index(drop=True)


def contact_sheet(
    suspects: Suspects, path: str | Path, data_dir: str | None = None, n: int = 24
) -> Path:
    """A PNG grid of the first ``n`` suspects (lowest p_own across tasks) with label and
    prediction; a person-level suspect shows the person's first picture. Pictures come from
    ``data_dir`` (default: the run's); a missing one is drawn as "picture not found"."""
    if data_dir is None:
        data_dir = read_config(suspects.run).get("data_dir")
    files = train_picture_files(data_dir)
    rows = suspects.table.sort_values("p_own", kind="stable").head(n)
    cells = [
        (
            files.get(row["example"]),
            f"{row['task']}: {row['image_id'] or row['person_id']}\n"
            f"label {row['label']} -> {row['predicted']}\np(label) = {row['p_own']:.3f}",
        )
        for _, row in rows.iterrows()
    ]
    return picture_sheet(cells, path)


def _parser() -> argparse.ArgumentParser:
    p = cli.ArgumentParser(
        prog="python -m kit.runs suspects",
        description="List the people and pictures whose out-of-fold probability of their own "
        "label is lowest (mask / gender / age) as a fixes CSV to review, and a contact sheet.",
    )
    p.add_argument("run", help="a run folder or K-fold parent (its val_probs.csv)")
    p.add_argument("--top", type=int, default=20, help="suspects listed per task (default 20)")
    p.add_argument("--out", help="output folder (default: suspects/<run folder name>)")
    p.add_argument("--data-dir", help="where the pictures are (default: the run's data_dir)")
    add_debug_flag(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m kit.runs suspects``; returns the exit code (2 on bad input)."""
    return run_cli(_main, argv, output_fix="pass another --out DIR, or free space")


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    run = Path(args.run)
    out = Path(args.out or Path("suspects") / run.name)
    found = find_suspects(run, args.top)
    fixes = fixes_table(found)
    io.write_text(out / "fixes.csv", fixes.to_csv(index=False, lineterminator="\n"))
    table = found.table[SUSPECT_COLUMNS]
    io.write_text(out / "suspects.csv", table.to_csv(index=False, lineterminator="\n"))
    contact_sheet(found, out / "suspects.png", args.data_dir)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(
        f"wrote {out / 'fixes.csv'} ({len(fixes)} suggested fixes), {out / 'suspects.csv'}, "
        f"{out / 'suspects.png'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
