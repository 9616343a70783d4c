"""Fine-tuning controls side by side on the synthetic fixture: plain fine-tuning against
``--freeze-epochs``, ``--layer-decay`` and ``--backbone-lr-scale`` (docs/recipes.md quotes the
figures; recipes/leaderboard.py's choice rests on them).

No pretrained weights can be downloaded on a build machine, so the "pretrained" backbone is
resnet10t trained on another synthetic fixture (other people, seed 1): weights that learned the
fixture's kind of cues, not these people. Each variant fine-tunes it on ``data/fixture`` at the
leaderboard recipe's AdamW learning rate, for the same seeds (each seed: its own split and
initial head), and the script prints the val macro F1 of each side by side.

python scripts/finetune_compare.py                      # 4 variants x 2 seeds, ~10-20 CPU-min
python scripts/finetune_compare.py --seeds 0 1 2 --epochs 8
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

import kit
from kit.data.fixture import FIXTURE

VARIANTS = {
    "plain": {},
    "freeze_epochs=1": {"freeze_epochs": 1},
    "layer_decay=0.8": {"layer_decay": 0.8},
    "backbone_lr_scale=0.1": {"backbone_lr_scale": 0.1},
}


def pretrained_file(root: Path, epochs: int) -> Path:
    """resnet10t's backbone after training on another fixture, as a timm state_dict."""
    data = kit.make_fixture(root / "other", n_people=60, image_size=(128, 96), seed=1)
    cfg = kit.Config(data_dir=str(data), output_dir=str(root / "runs"), name="pretrain")
    run = kit.fit(cfg.replace(epochs=epochs, quiet=True, workers=0))
    state = torch.load(run.run_dir / "best.pt", map_location="cpu", weights_only=False)["model"]
    backbone = {
        k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")
    }
    path = root / "resnet10t_other_fixture.pth"
    torch.save(backbone, path)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--lr", type=float, default=3e-4, help="the leaderboard recipe's rate")
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        weights = pretrained_file(root, epochs=10)
        data = FIXTURE[0] if FIXTURE[0].is_dir() else kit.make_fixture(FIXTURE[0])
        base = kit.Config(
            data_dir=str(data),
            output_dir=str(root / "runs"),
            pretrained_file=str(weights),
            epochs=args.epochs,
            lr=args.lr,
            quiet=True,
            workers=0,
        )
        print(f"{'variant':24s} " + " ".join(f"seed {s:<3d}" for s in args.seeds) + "    mean")
        for label, changes in VARIANTS.items():
            scores = [
                kit.fit(base.replace(seed=seed, name=label.split("=")[0], **changes)).best_score
                for seed in args.seeds
            ]
            cells = " ".join(f"{s:8.4f}" for s in scores)
            print(f"{label:24s} {cells}  {statistics.mean(scores):.4f}", flush=True)


if __name__ == "__main__":
    main()
