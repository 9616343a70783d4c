"""The strong augmentations on the GPU: whole training batches augmented where the model runs.

For a fast GPU whose loader workers cannot keep up with ``--preset strong``: the workers only
read the cache (the baseline's ``base`` preset) and the flips, colour jitter, small affine
moves and cutout run on the model's device, drawn per picture (``--device-aug strong``, with
kornia; docs/speed.md lists how it differs from the CPU ``strong`` preset). Validation and
test pictures are never augmented. Compare its score with the baseline's and strong_aug.py's.
On a CPU it is slower than the CPU preset (docs/benchmarks.md).

Changes: device_aug

python recipes/device_aug.py            # synthetic fixture
python recipes/device_aug.py --smoke    # seconds
"""

from __future__ import annotations

# When run as a script, Python puts recipes/ on sys.path, so the baseline imports by name.
from baseline import config as baseline_config

import kit


def config() -> kit.Config:
    """The baseline's settings with exactly the fields named in "Changes:" replaced."""
    return baseline_config().replace(name="device_aug", device_aug="strong")


def main(argv: list[str] | None = None) -> None:
    kit.main(config(), argv=argv)  # fit logs the scores and the run folder


if __name__ == "__main__":
    main()
