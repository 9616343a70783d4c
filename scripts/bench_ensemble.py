"""Time calibration and stacking at competition scale: 20 runs x 12,600 rows x 18 classes.

Synthetic arrays (no training): each "run" is a noisy view of the same labels, skewed towards
the common classes as a model trained on imbalanced data is. Prints seconds; not a test.
BLAS threads are left as the environment sets them (by default one per core) unless
``--threads`` sets them; stacking itself runs its solver on one BLAS thread either way.

python scripts/bench_ensemble.py [--runs 20] [--rows 12600] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--rows", type=int, default=12_600)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--threads", type=int, default=None, help="BLAS / OpenMP threads")
    args = p.parse_args()
    if args.threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)  # before numpy loads its BLAS

    import numpy as np
    from threadpoolctl import threadpool_info

    from kit.ensemble import calibrate, fit_stacker, soft_vote
    from kit.metrics import macro_f1

    rng = np.random.default_rng(0)
    prior = rng.dirichlet(np.full(18, 0.7))
    y = rng.choice(18, args.rows, p=prior)
    folds = rng.integers(0, args.folds, args.rows)
    members, tests = [], []
    for _ in range(args.runs):
        for out in (members, tests):
            logits = rng.normal(size=(args.rows, 18)) + 1.2 * np.eye(18)[y] + np.log(prior)
            probs = np.exp(logits)
            out.append(probs / probs.sum(1, keepdims=True))

    t0 = time.perf_counter()
    soft_val, soft_test = soft_vote(members), soft_vote(tests)
    cal = calibrate(soft_val, y, folds=folds)
    cal.predict(soft_test)
    t_cal = time.perf_counter() - t0

    t0 = time.perf_counter()
    stack = fit_stacker(members, y, folds)
    stack.predict(tests)
    t_stack = time.perf_counter() - t0

    blas = max((p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"), default=0)
    print(
        f"{args.runs} runs x {args.rows} rows x 18 classes, {args.folds} folds, "
        f"BLAS threads {blas}, {os.cpu_count()} CPUs"
    )
    print(
        f"soft vote + calibration (fit, {cal.n_folds}-fold honest, apply): {t_cal:6.2f} s   "
        f"val macro F1 {cal.f1_before:.4f} -> {cal.f1_after:.4f} in-sample, "
        f"{cal.f1_honest:.4f} honest"
    )
    print(
        f"stacking (fit, {stack.n_folds}-fold out-of-fold, predict):        {t_stack:6.2f} s   "
        f"val macro F1 {macro_f1(y, stack.oof.argmax(1)):.4f} out-of-fold"
    )
    print(f"total: {t_cal + t_stack:.2f} s")


if __name__ == "__main__":
    main()
