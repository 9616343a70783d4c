"""Ablation of the training techniques: the baseline and each technique alone, 3 seeds each.

Every run trains the same baseline config (resnet10t from scratch at 64x48, a few epochs) on the
same synthetic fixture with the same person-level split; only the model seed (initial weights,
batch order, augmentation, mixing draws) changes between the seeds of a row. Prints (and writes
with --out) the markdown table of docs/techniques.md: validation and held-out eval macro F1
(mean and standard deviation over the seeds) and seconds per epoch. The TTA row re-scores the
baseline's own checkpoints with the views, so it costs no training. The refit row's validation
score is that of the validated checkpoint (its validation people are trained on afterwards):
only its eval score can show a refit's effect.

The fixture is synthetic: a gain here is a sanity check that a technique does not break
learning, not a promise for the real photos.

python scripts/ablate.py --out docs/_ablation.md     # about 25 CPU-minutes on one core
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

import kit
import kit.train.data as train_data

TECHNIQUES: dict[str, dict] = {
    "baseline": {},
    "mixup": {"mix": "mixup"},
    "cutmix": {"mix": "cutmix"},
    "same-class vertical halves (1st place)": {"mix": "vhalves", "mix_pairs": "same_class"},
    "drop ages 27-29, 57-59 (1st place)": {"drop_ages": "27-29,57-59"},
    "EMA (decay 0.99)": {"ema": True, "ema_decay": 0.99},
    "logit adjusted": {"loss": "logit_adjusted"},
    "refit: 1 more epoch on train + val": {"refit": "continue", "refit_epochs": 1},
}
TTA = ("TTA hflip+shift (the baseline's checkpoints)", "hflip+shift")
SPLIT_SEED = 0


def _fixed_split() -> None:
    """Make every run split with seed SPLIT_SEED whatever its ``seed``: ``seed`` also seeds
    the split, and a fair comparison keeps the people of validation fixed."""
    load = train_data.load_splits
    train_data.load_splits = lambda cfg: load(cfg.replace(seed=SPLIT_SEED))


def _eval_f1(data: Path, ids: pd.Series, probs: np.ndarray) -> float:
    answers = pd.read_csv(data / "eval" / "answers.csv", dtype={"ImageID": str})
    truth = answers.set_index("ImageID")["ans"].reindex(ids).to_numpy()
    return float(kit.macro_f1(truth, probs.argmax(1)))


def _row(name: str, val: list[float], ev: list[float], seconds: list[float]) -> str:
    def cell(xs: list[float]) -> str:
        return f"{np.mean(xs):.3f} ± {np.std(xs, ddof=1):.3f}"

    per_seed = " / ".join(f"{v:.3f}" for v in val)
    sec = f"{np.mean(seconds):.1f}" if seconds else "-"
    return f"| {name} | {cell(val)} | {per_seed} | {cell(ev)} | {sec} |"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="runs/ablate", help="fixture and run folders go here")
    p.add_argument("--people", type=int, default=150)
    p.add_argument("--eval-people", type=int, default=40)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--only", nargs="*", default=None, help="technique names to run")
    p.add_argument("--out", default=None, help="also write the table to this file")
    args = p.parse_args()
    work = Path(args.work)
    data = work / "data"
    if not (data / "train" / "train.csv").is_file():
        kit.make_fixture(data, args.people, image_size=(48, 64), seed=0,
                         n_eval_people=args.eval_people)  # fmt: skip
    _fixed_split()
    base = kit.Config(
        data_dir=str(data), name="baseline", model="resnet10t", image_size=(64, 48),
        epochs=args.epochs, lr=3e-3, batch_size=32, workers=0, device="cpu", quiet=True,
        output_dir=str(work / "runs"),
    )  # fmt: skip
    eval_df = kit.read_eval(data)
    val_df = train_data.load_splits(base).val
    lines = [
        f"| technique | val macro F1 (mean ± sd, {len(args.seeds)} seeds) | val per seed | "
        "eval macro F1 | s / epoch |",
        "| --- | --- | --- | --- | --- |",
    ]
    baseline_dirs: list[Path] = []
    t0 = time.time()
    for name, change in TECHNIQUES.items():
        if args.only and name not in args.only:
            continue
        val, ev, seconds = [], [], []
        for seed in args.seeds:
            run = kit.fit(base.replace(seed=seed, name=f"{name.split()[0]}_s{seed}", **change))
            metrics = pd.read_csv(run.run_dir / "metrics.csv")
            test = pd.read_csv(run.run_dir / "test_probs.csv")
            val.append(float(run.summary["val_macro_f1"]))
            probs = test[[f"p{k}" for k in range(kit.NUM_CLASSES)]].to_numpy()
            ev.append(_eval_f1(data, test["image_id"], probs))
            seconds.append(float(metrics["seconds"].mean()))
            if name == "baseline":
                baseline_dirs.append(run.run_dir)
        lines.append(_row(name, val, ev, seconds))
        print(lines[-1], f"({time.time() - t0:.0f} s so far)", flush=True)
    if baseline_dirs:
        val = [_eval_f1_val(d, val_df, TTA[1]) for d in baseline_dirs]
        ev = [
            _eval_f1(data, eval_df["image_id"], kit.predict(d, eval_df, tta=TTA[1]))
            for d in baseline_dirs
        ]
        lines.append(_row(TTA[0], val, ev, []))
    table = "\n".join(lines)
    print(f"\n{table}\n\n{time.time() - t0:.0f} s in all")
    if args.out:
        Path(args.out).write_text(table + "\n", encoding="utf-8")


def _eval_f1_val(run_dir: Path, val: pd.DataFrame, tta: str) -> float:
    probs = kit.predict(run_dir, val, tta=tta)
    return float(kit.macro_f1(val["label"].to_numpy(), probs.argmax(1)))


if __name__ == "__main__":
    main()
