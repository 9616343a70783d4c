"""Measure calibration, stacking and the label-noise finder on K-fold runs of the fixture.

Trains three small K-fold runs on the synthetic fixture (CPU, a few minutes), then prints the
table of docs/ensembling.md ("Measured"): out-of-fold and eval macro F1 of each member, the
soft vote, the stack, the calibrated soft vote (in-sample and honest), and the recall of
planted label errors among the top suspects.

python scripts/measure_ensemble.py [--out runs/measure] [--people 60] [--epochs 4]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import kit
from kit.ensemble import calibrate_ensemble, ensemble
from kit.runs.suspects import find_suspects


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
    args = p.parse_args()
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
    b = kit.fit(base.replace(name="focal", loss="focal"))

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

    rows = []

    def add(name: str, result) -> None:
        test = _eval_f1(data, result.test_ids, result.test_labels)
        rows.append((name, result.val_macro_f1, test))

    add("ce (K-fold)", ensemble([a.run_dir]))
    add("focal (K-fold)", ensemble([b.run_dir]))
    add("soft vote ce+focal", ensemble([a.run_dir, b.run_dir], "soft"))
    add("stack ce+focal (OOF = honest)", ensemble([a.run_dir, b.run_dir], "stack"))
    soft = ensemble([a.run_dir, b.run_dir], "soft")
    cal = calibrate_ensemble(soft)
    rows.append(("soft + calibration, in-sample", cal.f1_after, None))
    rows.append((f"soft + calibration, honest ({cal.n_folds} folds)", cal.f1_honest, None))
    rows.append(("soft + calibration, eval", None, _eval_f1(data, soft.test_ids, soft.test_labels)))

    table = find_suspects(noisy.run_dir, top=2 * args.planted).table
    top = set(table[table.task == "gender"]["person_id"].head(2 * args.planted))
    recall = np.mean([pid in top for pid in planted.index])

    print(f"fixture: {args.people} people, {args.folds} folds, {args.epochs} epochs, test_resnet")
    print("| member / method | out-of-fold macro F1 | eval macro F1 |")
    print("| --- | --- | --- |")
    for name, val, test in rows:
        fmt = lambda x: "-" if x is None else f"{x:.4f}"  # noqa: E731
        print(f"| {name} | {fmt(val)} | {fmt(test)} |")
    print(
        f"\nplanted gender errors: {args.planted}; found in the top {2 * args.planted} gender "
        f"suspects: {recall:.0%} (python -m kit.runs suspects {noisy.run_dir})"
    )


if __name__ == "__main__":
    main()
