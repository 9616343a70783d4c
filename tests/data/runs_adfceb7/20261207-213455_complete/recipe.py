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


def main(argv: list[str] | None = None) -> None:
    # flags, training, one error: line on bad input; fit itself reports the run folder, its
    # scores and the submission (once)
    kit.main(config(), argv=argv)


if __name__ == "__main__":
    main()
