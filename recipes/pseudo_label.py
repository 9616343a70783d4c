"""Pseudo-labels in two stages: the eval pictures stage 1 predicts confidently join stage 2's
training rows under their predicted class.

Several teams trained on their own confident test predictions (docs/domain.md, "What worked
for the teams"). Stage 1 is any finished run or ensemble; stage 2 is the baseline trained with
every eval picture whose stage-1 top probability is above ``pseudo_threshold`` (0.95, the
confidence threshold of FixMatch: a wrong pseudo-label teaches its wrong class every epoch).
The pictures are training rows only, never validation rows, so stage 2's validation score
compares with stage 1's. Stage 2's run folder lists them (``pseudo_labels.csv``) and records
the source and the count (``summary.json``, ``pseudo``; docs/run-folder.md).

Changes: pseudo_threshold

python recipes/pseudo_label.py                       # stage 1 = the baseline, then stage 2
python recipes/pseudo_label.py --pseudo-labels runs/<ts>_baseline_kfold   # stage 2 only
python recipes/pseudo_label.py --pseudo-labels runs/<a>,runs/<b>          # their mean
python recipes/pseudo_label.py --smoke               # seconds (every eval picture passes,
                                                     # unless --pseudo-threshold is given)
python recipes/pseudo_label.py --pseudo-targets soft  # train on stage 1's probabilities

An ensemble of other methods: write its test probabilities with
``kit.write_test_probs(path, result.test_ids, result.test_probs)`` and pass ``--pseudo-labels
path``. Resume either stage with ``--resume <its run folder>``.
"""

from __future__ import annotations

# When run as a script, Python puts recipes/ on sys.path, so the baseline imports by name.
from baseline import config as baseline_config

import kit


def config() -> kit.Config:
    """Stage 2: the baseline's settings with exactly the fields named in "Changes:" replaced
    (``pseudo_labels`` is set when stage 1 is known)."""
    return baseline_config().replace(name="pseudo_label", pseudo_threshold=0.95)


def main(argv: list[str] | None = None) -> None:
    kit.main(config(), argv=argv, train=train)  # one error: line on bad input, exit code 2


def train(cfg: kit.Config) -> None:
    """Stage 1 (unless given) and stage 2, and how many eval pictures stage 2 trained on."""
    if cfg.smoke and cfg.pseudo_threshold == config().pseudo_threshold:
        # two smoke epochs are never 95% sure: let every eval picture through to train on it
        # (a threshold the user chose, by flag or config file, is kept)
        cfg = cfg.replace(pseudo_threshold=0.0)
        print(
            f"smoke: pseudo_threshold {config().pseudo_threshold} -> 0.0 (every eval picture); "
            "pass --pseudo-threshold to keep one"
        )
    if cfg.resume or cfg.pseudo_labels:
        kit.fit(cfg)
        return
    stage1 = kit.fit(cfg.replace(name=f"{cfg.name}_stage1"))
    stage2 = kit.fit(cfg.replace(pseudo_labels=str(stage1.run_dir)))
    passed = stage2.summary["pseudo"]
    print(
        f"stage 1 {stage1.run_dir}: val macro F1 {stage1.best_score:.4f}\n"
        f"stage 2 {stage2.run_dir}: val macro F1 {stage2.best_score:.4f} with "
        f"{passed['n_pictures']} of {passed['n_eval']} eval pictures above {cfg.pseudo_threshold}"
    )


if __name__ == "__main__":
    main()
