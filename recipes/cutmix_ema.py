"""Same-class half-picture CutMix and an average of the weights: the 1st place's mixing.

Every training batch pairs each picture with another of the same 18-way class and pastes the
partner's right part next to the picture's left part, the cut drawn between 40 % and 60 % of
the width (``vhalves``; the 1st place cut at 46-54 %: add ``--mix-lam 0.46 0.54``). A
partner of the same class keeps every pasted mask under its label, which random CutMix does
not (the 3rd place saw it "make wrong examples"). Validation, best.pt and the submission use
an exponential moving average of the weights (timm's ModelEmaV3). docs/techniques.md has the
measurements.

Changes: mix, mix_pairs, ema

python recipes/cutmix_ema.py            # synthetic fixture
python recipes/cutmix_ema.py --smoke    # seconds
"""

from __future__ import annotations

# When run as a script, Python puts recipes/ on sys.path, so the baseline imports by name.
from baseline import config as baseline_config

import kit


def config() -> kit.Config:
    """The baseline's settings with exactly the fields named in "Changes:" replaced."""
    return baseline_config().replace(
        name="cutmix_ema", mix="vhalves", mix_pairs="same_class", ema=True
    )


def main(argv: list[str] | None = None) -> None:
    kit.fit(kit.parse_args(config(), argv))  # fit logs the scores and the run folder


if __name__ == "__main__":
    main()
