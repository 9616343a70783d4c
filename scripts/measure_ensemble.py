"""Measure calibration, stacking, per-task merging, pseudo-labels and the label-noise finder on
K-fold runs of the fixture.

Trains small K-fold runs on the synthetic fixture (CPU, a few minutes), then prints the table
of docs/ensembling.md ("Measured"): out-of-fold and eval macro F1 of each member, the soft
vote, the stack, the calibrated soft vote (in-sample and honest), a mask + gender + age
per-task merge beside the 18-way run, pseudo-label stage 2 beside stage 1, and the recall of
planted label errors among the top suspects. ``--parts`` measures some of these only (the
18-way ``ce`` K-fold is always trained: every part compares with it).

python scripts/measure_ensemble.py [--out runs/measure] [--people 60] [--epochs 4]
    [--parts calibration,tasks,pseudo,noise] [--pseudo-threshold 0.9]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import kit
from kit.ensemble import calibrate_ensemble, ensemble
from kit.runs.suspects import find_suspects

PARTS = ("calibration", "tasks", "pseudo", "noise")


def _eval_f1(data: Path, ids: np.ndarray, labels: np.ndarray) -> float:
    answers = pd.read_csv(data / "eval" / "answers.csv", dtype={"ImageID": str})
    truth = answers.set_index("ImageID")["ans"].reindex(ids).to_numpy()
    return kit.macro_f1(truth, labels)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/measure")
    p.add_argument("--people", type=int, default=60)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--planted", type=int, default=6, help="people whose gender is flipped")
    p.add_argument("--parts", default=",".join(PARTS), help="comma list of " + ", ".join(PARTS))
    p.add_argument("--pseudo-threshold", type=float, default=0.9)
    args = p.parse_args()
    parts = set(args.parts.split(","))
    if parts - set(PARTS):
        p.error(f"--parts: unknown {sorted(parts - set(PARTS))}; expected any of {PARTS}")
    out = Path(args.out)
    data = out / "data"
    if not (data / "train.csv").is_file():
        kit.make_fixture(data, n_people=args.people, image_size=(48, 36), n_eval_people=10)
    base = kit.Config(
        data_dir=str(data),
        output_dir=str(out / "runs"),
        model="test_resnet",
        image_size=(32, 24),
        epochs=args.epochs,
        batch_size=16,
        warmup_epochs=0.0,
        folds="all",
        n_folds=args.folds,
        workers=0,
        device="cpu",
        quiet=True,
    )
    a = kit.fit(base.replace(name="ce"))
    rows = []

    def add(name: str, result) -> None:
        test = _eval_f1(data, result.test_ids, result.test_labels)
        rows.append((name, result.val_macro_f1, test))

    add("ce (K-fold)", ensemble([a.run_dir]))
    if "calibration" in parts:
        b = kit.fit(base.replace(name="focal", loss="focal"))
        add("focal (K-fold)", ensemble([b.run_dir]))
        add("soft vote ce+focal", ensemble([a.run_dir, b.run_dir], "soft"))
        add("stack ce+focal (OOF = honest)", ensemble([a.run_dir, b.run_dir], "stack"))
        soft = ensemble([a.run_dir, b.run_dir], "soft")
        cal = calibrate_ensemble(soft)
        rows.append(("soft + calibration, in-sample", cal.f1_after, None))
        rows.append((f"soft + calibration, honest ({cal.n_folds} folds)", cal.f1_honest, None))
        cal_eval = _eval_f1(data, soft.test_ids, soft.test_labels)
        rows.append(("soft + calibration, eval", None, cal_eval))
    if "tasks" in parts:
        tasks = [kit.fit(base.replace(name=t, head=t)).run_dir for t in ("mask", "gender", "age")]
        add("per-task merge mask+gender+age (K-folds)", ensemble(tasks))
        add("per-task merge + ce, soft vote", ensemble([*tasks, a.run_dir], "soft"))
    note = ""
    if "pseudo" in parts:
        pseudo = {"pseudo_labels": str(a.run_dir), "pseudo_threshold": args.pseudo_threshold}
        stage2 = kit.fit(base.replace(name="ce_pseudo", **pseudo))
        passed = stage2.summary["pseudo"]
        add("pseudo-label stage 2 (ce K-fold + stage-1 eval labels)", ensemble([stage2.run_dir]))
        soft = kit.fit(base.replace(name="ce_pseudo_soft", pseudo_targets="soft", **pseudo))
        add("pseudo-label stage 2, soft targets (stage-1 probabilities)", ensemble([soft.run_dir]))
        note = (
            f"\npseudo-labels: {passed['n_pictures']} of {passed['n_eval']} eval pictures above "
            f"{args.pseudo_threshold} (stage 1: the ce K-fold)"
        )

    recall = None
    if "noise" in parts:
        people = kit.read_train(data).groupby("person_id")["gender"].first()
        planted = people.sample(args.planted, random_state=0)
        fixes = out / "planted_fixes.csv"
        pd.DataFrame(
            {
                "person_id": planted.index,
                "field": "gender",
                "value": ["female" if g == 0 else "male" for g in planted],
            }
        ).to_csv(fixes, index=False)
        noisy = kit.fit(base.replace(name="ce_planted", fixes=str(fixes)))
        table = find_suspects(noisy.run_dir, top=2 * args.planted).table
        top = set(table[table.task == "gender"]["person_id"].head(2 * args.planted))
        recall = np.mean([pid in top for pid in planted.index])

    print(f"fixture: {args.people} people, {args.folds} folds, {args.epochs} epochs, test_resnet")
    print("| member / method | out-of-fold macro F1 | eval macro F1 |")
    print("| --- | --- | --- |")
    for name, val, test in rows:
        fmt = lambda x: "-" if x is None else f"{x:.4f}"  # noqa: E731
        print(f"| {name} | {fmt(val)} | {fmt(test)} |")
    print(note)
    if recall is not None:
        print(
            f"planted gender errors: {args.planted}; found in the top {2 * args.planted} gender "
            f"suspects: {recall:.0%} (python -m kit.runs suspects {noisy.run_dir})"
        )


if __name__ == "__main__":
    main()
