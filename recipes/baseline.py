"""Baseline: a small CNN trained from scratch, one holdout split, one submission.

python recipes/baseline.py                       # synthetic fixture, ~2 minutes on a CPU
python recipes/baseline.py --data-dir /data      # the competition data
python recipes/baseline.py --smoke               # seconds: checks the whole path
python recipes/baseline.py --help                # every option, with its default
"""

from __future__ import annotations

import kit


def config() -> kit.Config:
    """This recipe's settings; any of them can be overridden on the command line."""
    return kit.Config(
        name="baseline",
        model="resnet10t",
        head="single",
        loss="cross_entropy",
        preset="base",
        image_size=(64, 48),
        epochs=20,
        lr=3e-3,
    )


def _fmt(score: float | None) -> str:
    return "-" if score is None else f"{score:.4f}"  # a per-task run (--head mask) has none


def main(argv: list[str] | None = None) -> None:
    cfg = kit.parse_args(config(), argv)
    run = kit.fit(cfg)
    if not kit.is_main_process():
        return  # under torchrun, rank 0 alone reports
    s = run.summary
    print(f"run folder: {run.run_dir}")
    where = "out of fold" if s.get("folds") else f"at epoch {s['best_epoch']}"
    heads = ", ".join(
        f"{h} {s[f'val_f1_{h}']:.3f}"
        for h in ("mask", "gender", "age")
        if s[f"val_f1_{h}"] is not None
    )
    print(
        f"val macro F1 {_fmt(s['val_macro_f1'])} (accuracy {s['val_accuracy']:.4f}; {heads})"
        f" {where}"
    )
    if (run.run_dir / "submission.csv").is_file():
        print(f"submission: {run.run_dir / 'submission.csv'}")


if __name__ == "__main__":
    main()
