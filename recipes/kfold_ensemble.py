"""K-fold training of two recipes, then their weighted ensemble: the team workflow in one script.

1. the baseline trained on every fold (``--folds all``): out-of-fold predictions of every
   training image in ``runs/<ts>_baseline_kfold/``, test probabilities averaged over folds;
2. the same baseline with focal loss, on the same folds: same data, ``n_folds`` and ``seed``,
   so both members predict the same out-of-fold rows and the ensembler can fit weights there;
3. ``kit.ensemble_runs([...], method="soft", weights="auto")``, written to
   ``runs/ensembles/<ts>_kfold_ensemble.csv`` with its JSON record beside it.

python recipes/kfold_ensemble.py                    # synthetic fixture, 5 folds x 2 members
python recipes/kfold_ensemble.py --data-dir /data   # the competition data
python recipes/kfold_ensemble.py --smoke            # seconds: 2 folds per member, tiny fixture

Flags apply to both members (the second then switches its loss to focal). A stopped member
resumes on its own: python recipes/baseline.py --resume runs/<ts>_<name>_kfold
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

# When run as a script, Python puts recipes/ on sys.path, so the baseline imports by name.
from baseline import config as baseline_config

import kit


def config() -> kit.Config:
    """The first member: the baseline on every fold."""
    return baseline_config().replace(folds="all")


def variant(cfg: kit.Config) -> kit.Config:
    """The second member: the first with focal loss (same folds, so the same OOF rows)."""
    return cfg.replace(name=f"{cfg.name}_focal", loss="focal")


def main(argv: list[str] | None = None) -> None:
    kit.main(config(), argv=argv, train=train_and_ensemble)  # flags, errors: as for one fit


def train_and_ensemble(cfg: kit.Config) -> None:
    """Both members, then their ensemble and its submission."""
    if cfg.resume:
        raise ValueError(
            "this recipe trains two members; resume each with "
            "python recipes/baseline.py --resume <its parent folder>, then ensemble them with "
            "python -m kit.ensemble <parent> <parent> -o subs/ens.csv --weights auto"
        )
    if cfg.smoke:
        cfg = cfg.replace(n_folds=2)  # two folds per member keep the smoke run to seconds
    members = [kit.fit(cfg), kit.fit(variant(cfg))]
    for run in members:
        print(f"{run.run_dir}: out-of-fold macro F1 {run.best_score:.4f}")

    result = kit.ensemble_runs([run.run_dir for run in members], method="soft", weights="auto")
    print(result.member_table().to_string(index=False))
    if result.val_macro_f1 is not None:
        print(f"ensemble out-of-fold macro F1 {result.val_macro_f1:.4f} (weights fitted there)")
    else:
        print(f"no ensemble validation score: {result.val_note}")
    if result.test_labels is None:
        print("no eval set: nothing to submit")
        return
    stem = f"{datetime.now():%Y%m%d-%H%M%S}_kfold_ensemble"
    path = Path(cfg.output_dir) / "ensembles" / f"{stem}.csv"
    submission, record = kit.write_ensemble(result, path)
    print(f"submission: {submission}\nrecord: {record}")


if __name__ == "__main__":
    main()
