"""Poly-1 loss, defined and registered in this one file: kit is not edited.

Poly-1 (Leng et al., "PolyLoss", ICLR 2022) is cross-entropy plus ``epsilon * (1 - p_t)``, the
first term of cross-entropy's Taylor series weighted up: it pushes harder on pictures whose
true class is still unlikely. ``@kit.register_loss`` makes it a loss name like ``focal``, so
``--loss poly1``, ``--loss-kwargs epsilon=2`` and specs such as ``0.5*poly1+0.5*f1`` work; the
run folder keeps this file (``recipe.py``), so ``python -m kit.predict RUN`` and the other tools
find the loss again in a fresh process.

Changes: loss

python recipes/poly_loss.py --smoke
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from baseline import config as baseline_config

import kit

if TYPE_CHECKING:  # for the annotations only: torch is imported where it is used
    from torch import nn


@kit.register_loss("poly1")
def poly1(epsilon: float = 1.0) -> nn.Module:
    """Cross-entropy + ``epsilon * (1 - p_t)``; targets are class ids or, in mixed batches,
    probabilities (n, C)."""
    # torch here, not at the top: --help stays instant (importing torch takes seconds)
    import torch.nn.functional as F
    from torch import nn

    class Poly1(nn.Module):
        def forward(self, logits, target):
            if not target.is_floating_point():
                target = F.one_hot(target, logits.shape[1]).float()
            log_p = logits.float().log_softmax(1)
            cross_entropy = -(target * log_p).sum(1)
            p_true = (target * log_p.exp()).sum(1)
            return (cross_entropy + epsilon * (1 - p_true)).mean()

    return Poly1()


def config() -> kit.Config:
    """The baseline's settings with exactly the fields named in "Changes:" replaced."""
    return baseline_config().replace(name="poly_loss", loss="poly1")


def main(argv: list[str] | None = None) -> None:
    kit.main(config(), argv=argv)


if __name__ == "__main__":
    main()
