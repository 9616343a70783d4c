"""The pictures at the end of a run, measured: CPU milliseconds of each, and of a tiny fit.

    python scripts/bench_pictures.py                 # median of 5 draws each, 3 tiny fits
    python scripts/bench_pictures.py --repeats 9 --fits 5 --keep /tmp/pictures

Every run folder ends with three pictures (``val_mistakes.png``, ``val_confusion.png``,
``curves.png``, docs/run-folder.md). The tests train a few hundred tiny runs in-process
(issue #28), so what these cost is paid on every one of them. This script trains the tests'
tiny config (36 people, 32x24 pixels, 2 epochs x 3 steps, one thread) on a fresh fixture, then
draws each of its pictures again from that run's own files (its validation probabilities and
pictures, its confusion, its ``metrics.csv`` rows) with the arguments the run uses, and prints
the median CPU milliseconds (``time.process_time``: it holds on a busy machine where wall time
does not) of each, their sum, and of a whole tiny fit, with the load average before and after.
``--keep DIR`` leaves the pictures there to look at.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from kit.config import Config  # noqa: E402
from kit.data.fixture import make_fixture  # noqa: E402
from kit.labels import class_name  # noqa: E402
from kit.plot import confusion_png, curves_png, mistakes_sheet, train_picture_files  # noqa: E402  # noqa: E402
from kit.runfolder import VAL_PROBS, read_metrics, read_summary  # noqa: E402
from kit.train import fit  # noqa: E402


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def cpu_ms(fn: Callable[[], object], repeats: int) -> float:
    """Median CPU milliseconds of ``fn()`` over ``repeats`` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append((time.process_time() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=5, help="timed draws of each picture")
    p.add_argument("--fits", type=int, default=3, help="timed tiny fits (after a warm one)")
    p.add_argument("--keep", help="a folder to leave the pictures in")
    args = p.parse_args()
    torch.set_num_threads(1)  # as the tests run
    print(f"load average {_load()}")
    tmp = Path(tempfile.mkdtemp(prefix="bench_pictures_"))
    try:
        data = make_fixture(tmp / "data", n_people=36, image_size=(48, 36), seed=0, n_eval_people=4)
        cfg = Config(
            data_dir=str(data),
            name="t",
            model="test_resnet",
            image_size=(32, 24),
            epochs=2,
            batch_size=16,
            eval_batch_size=128,
            max_steps_per_epoch=3,
            warmup_epochs=0.0,
            workers=0,
            device="cpu",
            quiet=True,
            output_dir=str(tmp / "runs"),
        )
        run = fit(cfg).run_dir  # also the warm-up: imports, matplotlib's font cache
        fits = []
        for _ in range(args.fits):
            start = time.process_time()
            fit(cfg)
            fits.append((time.process_time() - start) * 1000)

        out = Path(args.keep) if args.keep else tmp / "pictures"
        out.mkdir(parents=True, exist_ok=True)
        val = pd.read_csv(run / VAL_PROBS, dtype={"image_id": str, "person_id": str})
        files = train_picture_files(data)
        pictures = [files.get(i) for i in val["image_id"]]
        probs = val[[f"p{c}" for c in range(18)]].to_numpy()
        summary = read_summary(run)
        names = [f"{c} {class_name(c)}" for c in range(18)]
        rows = read_metrics(run)
        draws = {
            "mistakes sheet": lambda: mistakes_sheet(
                pictures, val["label"].to_numpy(), probs, out / "val_mistakes.png", title="t"
            ),
            "confusion": lambda: confusion_png(
                summary["confusion"], out / "val_confusion.png", class_names=names, title="t"
            ),
            "curves": lambda: curves_png(rows, out / "curves.png", title=run.name),
        }
        times = {name: cpu_ms(draw, args.repeats) for name, draw in draws.items()}
        fit_ms = statistics.median(fits)
        width = max(map(len, times))
        for name, ms in times.items():
            print(f"{name:<{width}}  {ms:7.0f} CPU ms")
        total = sum(times.values())
        print(f"{'all three':<{width}}  {total:7.0f} CPU ms")
        print(
            f"tiny fit: {fit_ms:.0f} CPU ms (median of {args.fits}), of which the pictures "
            f"about {total:.0f} ({total / fit_ms:.0%})"
        )
        if args.keep:
            print(f"pictures in {out}")
        print(f"load average {_load()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
