"""Ablation of the training techniques: the baseline and each technique alone, 3 seeds each.

Every run trains the same baseline config (resnet10t from scratch at 64x48) for the same
number of epochs on the same synthetic fixture with the same person-level split; only the model
seed (initial weights, batch order, augmentation, mixing draws) changes between the seeds of a
row. ``--mix-off-epochs`` is set on every arm alike (it only changes the mixing arms: their
last N epochs are unmixed, as a mixing recipe would train). Prints (and writes with --out)
the markdown table of docs/techniques.md: validation and held-out eval macro F1 (mean and
standard deviation over the seeds), the difference to the reference row with its 95% interval
and verdict from kit.metrics (paired seed by seed: every row trains the same seeds on the same
validation people, as the ledger's ``python -m kit.runs --vs`` compares repeats), the
validation mask / gender / age F1 (means) and seconds per epoch. The TTA rows re-score
another row's own checkpoints with the views, so they cost no training, and are compared with
that row (``center_face`` uses the fixture's true face boxes, ``--face-detector boxes``). The
refit row's validation score is that of the validated checkpoint (its validation people are
trained on afterwards): only its eval score can show a refit's effect. The split is held fixed
by ``split_seed``, the runs trained side by side by kit.recipe (as ``--seeds --jobs``).

The fixture is synthetic: a gain here is a sanity check that a technique does not break
learning, not a promise for the real photos.

The defaults are the table's: a fixture of 300 training people (240 train / 60 validation
people: 1,680 / 420 pictures) and 60 eval people at 96x72, 12 epochs, 3 seeds; ``--jobs`` runs
train side by side, each on one torch thread (the default: one per core):

    nice -n 10 python scripts/ablate.py --work runs/ablate --out runs/ablate/table.md
    # 39 runs of 12 epochs: about 70 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd
import torch

import kit
import kit.splits as kit_splits
from kit import runfolder
from kit.config import fields_with_role
from kit.metrics import mean_sd, seed_difference
from kit.recipe import train_side_by_side

TECHNIQUES: dict[str, dict] = {
    "baseline": {},
    "mixup": {"mix": "mixup"},
    "cutmix": {"mix": "cutmix"},
    # the same CutMix on half the batches: the budget of 12 epochs is short for CutMix (the
    # 24-epoch block of docs/techniques.md), and mixing fewer batches is the usual way out
    "cutmix on half the batches (--mix-prob 0.5)": {"mix": "cutmix", "mix_prob": 0.5},
    # CutMix whose partners share the 18-way class: does random CutMix lose by mixing itself,
    # or by boxes that paste one class's mask region into another's picture under a label that
    # still mostly says the first class (the "wrong examples" the 3rd place reported)?
    "same-class cutmix (diagnostic)": {"mix": "cutmix", "mix_pairs": "same_class"},
    "same-class vertical halves (1st place)": {
        "mix": "vhalves",
        "mix_pairs": "same_class",
    },
    "drop ages 27-29, 57-59 (1st place)": {"drop_ages": "27-29,57-59"},
    "EMA (decay 0.99)": {"ema": True, "ema_decay": 0.99},
    "logit adjusted": {"loss": "logit_adjusted"},
    "refit: 1 more epoch on train + val": {"refit": "continue", "refit_epochs": 1},
    # the baseline on face crops: the runs center_face is meant for (they saw face crops)
    "face crop (the baseline with --crop-mode face)": {"crop_mode": "face"},
    # the same on the boxes MTCNN finds (the fixture's drawn faces: most fall back to the
    # centre crop), not the fixture's true boxes: what a real run's face crop sees
    "mtcnn face crop (--crop-mode face --face-detector mtcnn)": {
        "crop_mode": "face",
        "face_detector": "mtcnn",
    },
    # centre-crop runs that see a face crop of half their training pictures: the runs that
    # TTA center_face can help, as they learned both of its views
    "crop mix 0.5 (the baseline, half its pictures face-cropped)": {"crop_mix": 0.5},
    # the baseline trains unaugmented (preset base); the runs that flip and shift TTA views
    # are meant for learned flipped and shifted pictures
    "strong augmentation (--preset strong)": {"preset": "strong"},
}
#: row name -> (the row whose checkpoints it re-scores, TTA spec): no training of its own.
TTAS: dict[str, tuple[str, str]] = {
    "TTA hflip+shift (the baseline's checkpoints)": ("baseline", "hflip+shift"),
    "TTA center_face (the baseline's checkpoints)": ("baseline", "center_face"),
    "TTA center_face (the face-crop runs' checkpoints)": (
        "face crop (the baseline with --crop-mode face)",
        "center_face",
    ),
    "TTA hflip+shift (the strong-preset runs' checkpoints)": (
        "strong augmentation (--preset strong)",
        "hflip+shift",
    ),
    "TTA center_face (the crop-mix runs' checkpoints)": (
        "crop mix 0.5 (the baseline, half its pictures face-cropped)",
        "center_face",
    ),
}
#: Every run validates on the people of this split seed, whatever its ``seed`` (a fair
#: comparison keeps the validation people fixed): the config field ``split_seed``.
SPLIT_SEED = 0


def _eval_f1(data: Path, ids: np.ndarray | pd.Series, probs: np.ndarray) -> float:
    answers = pd.read_csv(data / "eval" / "answers.csv", dtype={"ImageID": str})
    truth = answers.set_index("ImageID")["ans"].reindex(ids).to_numpy()
    return float(kit.macro_f1(truth, probs.argmax(1)))


@dataclass
class Scores:
    """One run's figures: validation scores (kit.summarize), eval macro F1, s / epoch."""

    val: dict[str, float]
    eval_f1: float
    seconds: float | None


def _run_scores(run_dir: Path, data: Path) -> Scores:
    """The figures of a finished run folder, read by kit's run-folder readers."""
    val = runfolder.read_val_probs(run_dir / runfolder.VAL_PROBS)
    test = runfolder.read_test_probs(run_dir / runfolder.TEST_PROBS)
    seconds = [row["seconds"] for row in runfolder.read_metrics(run_dir)]
    return Scores(
        kit.summarize(val.truth, val.labels),
        _eval_f1(data, test.ids, test.probs),
        float(np.mean(seconds)),
    )


def _tta_scores(run_dir: Path, data: Path, val: pd.DataFrame, tta: str) -> Scores:
    """A run's checkpoint re-scored with the test-time views ``tta``."""
    eval_df = kit.read_eval(data)
    probs = kit.predict_probs(run_dir, val, tta=tta)
    ev = _eval_f1(data, eval_df["image_id"], kit.predict_probs(run_dir, eval_df, tta=tta))
    return Scores(kit.summarize(val["label"].to_numpy(), probs.argmax(1)), ev, None)


def _val(runs: list[Scores]) -> np.ndarray:
    return np.array([r.val["macro_f1"] for r in runs])


def _vs(runs: list[Scores], ref: list[Scores] | None) -> str:
    """Val macro F1 minus the reference row's with its 95% interval and verdict, seed by seed
    (both rows ran the same seeds on the same validation people: kit.metrics.seed_difference,
    paired)."""
    if ref is None or runs is ref:
        return "- | -"
    ci = seed_difference(reference=_val(ref), other=_val(runs), paired=True)
    if ci is None:  # one seed: no spread to judge by
        return f"{_val(runs)[0] - _val(ref)[0]:+.3f} | n/a"
    return f"{ci.delta:+.3f} [{ci.low:+.3f}, {ci.high:+.3f}] | {ci.verdict}"


def _row(name: str, runs: list[Scores], vs: str) -> str:
    def cell(xs: list[float]) -> str:
        mean, sd, _ = mean_sd(xs)
        return f"{mean:.3f}" + ("" if sd is None else f" ± {sd:.3f}")

    val = list(_val(runs))
    per_seed = " / ".join(f"{v:.3f}" for v in val)
    tasks = " / ".join(
        f"{np.mean([r.val[f'f1_{t}'] for r in runs]):.2f}" for t in ("mask", "gender", "age")
    )
    seconds = [r.seconds for r in runs if r.seconds is not None]
    sec = f"{np.mean(seconds):.1f}" if seconds else "-"
    ev = cell([r.eval_f1 for r in runs])
    return f"| {name} | {cell(val)} | {per_seed} | {vs} | {tasks} | {ev} | {sec} |"


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _latest(runs: Path, tag: str, cfg: kit.Config) -> Path:
    """The newest finished run folder named ``<timestamp>_<tag>`` trained with ``cfg``'s
    experiment fields (two rows may share a tag), for --from-runs."""
    fields = fields_with_role("experiment")

    def same(d: Path) -> bool:
        done = kit.read_run(d).config  # kit's reader: old config.json files read as trained
        return all(getattr(done, k) == getattr(cfg, k) for k in fields)

    found = [
        d for d in sorted(runs.glob(f"*_{tag}")) if (d / "test_probs.csv").is_file() and same(d)
    ]
    if not found:
        _fail(f"no finished run folder *_{tag} in {runs}; train it first (leave out --from-runs)")
    return found[-1]


def _train(cfg: kit.Config) -> Path:
    """One arm and seed, trained in this process on one torch thread: on CPU the thread count
    changes the rounding of the sums and so the metrics, and one thread per run makes the
    table the same whatever ``--jobs``."""
    torch.set_num_threads(1)
    return kit.fit(cfg).run_dir


def _train_all(cfgs: list[kit.Config], jobs: int) -> list[Path]:
    """Train ``cfgs``, ``jobs`` processes side by side (kit.recipe, as ``--seeds --jobs``)."""
    return train_side_by_side(_train, cfgs, jobs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", default="runs/ablate", help="fixture and run folders go here")
    p.add_argument("--people", type=int, default=300)
    p.add_argument("--eval-people", type=int, default=60)
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument(
        "--mix-off-epochs",
        type=int,
        default=1,
        help="every arm's mix_off_epochs (a no-op for the arms without mixing)",
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--only", nargs="*", default=None, help="row names to make")
    p.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="runs trained side by side, one process and one thread each (default: the cores)",
    )
    p.add_argument(
        "--from-runs",
        action="store_true",
        help="train nothing: tabulate the newest finished run folders of each row and seed",
    )
    p.add_argument("--out", default=None, help="also write the table to this file")
    args = p.parse_args()
    rows = list(TECHNIQUES) + list(TTAS)
    unknown = [name for name in args.only or () if name not in rows]
    if unknown:
        _fail(f"--only: no row {unknown[0]!r}; the rows are: {', '.join(map(repr, rows))}")
    work = Path(args.work)
    data = work / "data"
    if not (data / "train" / "train.csv").is_file():
        # (height, width): portrait like the real 512x384, larger than the network input
        kit.make_fixture(
            data, args.people, image_size=(96, 72), seed=0, n_eval_people=args.eval_people
        )
    base = kit.Config(
        data_dir=str(data),
        split_seed=SPLIT_SEED,
        name="baseline",
        model="resnet10t",
        image_size=(64, 48),
        epochs=args.epochs,
        mix_off_epochs=args.mix_off_epochs,
        lr=3e-3,
        batch_size=32,
        workers=0,
        device="cpu",
        quiet=True,
        face_detector="boxes",
        output_dir=str(work / "runs"),
    )
    val_df = kit_splits.load_splits(base).val
    wanted = [
        name
        for name in TECHNIQUES
        if not args.only or name in args.only or name in _scored_by_tta(args.only)
    ]
    cfgs = {
        (name, seed): base.replace(seed=seed, name=f"{name.split()[0]}_s{seed}", **TECHNIQUES[name])
        for name in wanted
        for seed in args.seeds
    }
    t0 = time.time()
    if args.from_runs:
        dirs = [_latest(work / "runs", cfg.name, cfg) for cfg in cfgs.values()]
    else:
        dirs = _train_all(list(cfgs.values()), args.jobs)
    run_dirs = dict(zip(cfgs, dirs, strict=True))
    scores = {
        name: [_run_scores(run_dirs[name, seed], data) for seed in args.seeds] for name in wanted
    }
    shown = [name for name in wanted if not args.only or name in args.only]
    base_runs = scores.get("baseline")
    lines = [
        (
            f"| technique | val macro F1 (mean ± sd, {len(args.seeds)} seeds) | val per seed | "
            "val vs reference [95% interval] | verdict | val F1 mask / gender / age | "
            "eval macro F1 | s / epoch |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in shown:
        lines.append(_row(name, scores[name], _vs(scores[name], base_runs)))
    for name, (rescored, tta) in TTAS.items():
        if args.only and name not in args.only:
            continue
        dirs = [run_dirs[rescored, seed] for seed in args.seeds]
        runs = [_tta_scores(d, data, val_df, tta) for d in dirs]
        lines.append(_row(name, runs, _vs(runs, scores[rescored])))
    table = "\n".join(lines)
    print(f"{table}\n\n{time.time() - t0:.0f} s in all")
    if args.out:
        Path(args.out).write_text(table + "\n", encoding="utf-8")


def _scored_by_tta(only: list[str] | None) -> set[str]:
    """The rows whose run folders the asked-for TTA rows re-score."""
    return {TTAS[name][0] for name in only or () if name in TTAS}


if __name__ == "__main__":
    main()
