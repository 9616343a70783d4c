"""torchvision's resnet18 with a dropout + linear head of this file's own: kit is not edited.

``--model torchvision/<name>`` builds any torchvision classification model without its
classifier (the backbone contract: pictures in, pooled features out; docs/architecture.md);
``--pretrained`` starts it from torchvision's own weights (torch's hub cache, else a download)
and normalises the pictures as those weights expect (``weights.transforms()``). The head is
registered here with ``@kit.register_head``; the run folder keeps this file, so every tool
after training (``python -m kit.predict RUN``, ``--resume``) finds the head again.

Changes: model, head

python recipes/torchvision_resnet18.py --smoke
python recipes/torchvision_resnet18.py --pretrained --image-size 224 224
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from baseline import config as baseline_config

import kit

if TYPE_CHECKING:  # for the annotations only: torch is imported where it is used
    from torch import nn


@kit.register_head("dropout_linear", kind="joint")
def dropout_linear(in_features: int) -> nn.Module:
    """Dropout, then one linear layer to the 18 classes."""
    from torch import nn  # here, not at the top: --help stays instant (torch takes seconds)

    return nn.Sequential(nn.Dropout(0.3), nn.Linear(in_features, kit.NUM_CLASSES))


def config() -> kit.Config:
    """The baseline's settings with exactly the fields named in "Changes:" replaced."""
    return baseline_config().replace(
        name="torchvision_resnet18", model="torchvision/resnet18", head="dropout_linear"
    )


def main(argv: list[str] | None = None) -> None:
    kit.main(config(), argv=argv)


if __name__ == "__main__":
    main()
