"""Strong augmentation with cutout, and horizontal-flip test-time augmentation.

Flips, colour jitter, small affine moves and cutout (CoarseDropout: up to four small holes)
during training (the ``strong`` preset of kit/transforms.py), and at inference the mean of the
probabilities of each picture and its mirror image. Teams reported TTA helping; cutout had
mixed reports (one team saw it make wrong examples), so compare this run with the baseline's.

Changes: preset, tta

python recipes/strong_aug.py            # synthetic fixture
python recipes/strong_aug.py --smoke    # seconds
"""

from __future__ import annotations

# When run as a script, Python puts recipes/ on sys.path, so the baseline imports by name.
from baseline import config as baseline_config

import kit


def config() -> kit.Config:
    """The baseline's settings with exactly the fields named in "Changes:" replaced."""
    return baseline_config().replace(name="strong_aug", preset="strong", tta="hflip")


def main(argv: list[str] | None = None) -> None:
    kit.fit(kit.parse_args(config(), argv))  # fit logs the scores and the run folder


if __name__ == "__main__":
    main()
