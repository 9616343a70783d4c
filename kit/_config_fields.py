"""The fields of :class:`kit.config.Config` (which subclasses :class:`Fields`): each setting's
default, ``--help`` text and metadata, grouped by the ``# comment`` headings that
docs/configuration.md shows as sections. Every list of fields kit needs derives from this metadata.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["ROLES", "Fields"]


#: Field roles (``role`` in field metadata). Resume checks, the ledger's "what differs" and
#: K-fold's split checks are derived from them, never listed by hand.
ROLES: dict[str, str] = {
    "experiment": "changes what is learned or how it is scored: compared by the ledger, "
    "fixed on resume",
    "run": "controls this invocation only (resume, printing): may change on resume",
    "machine": "how fast, not what: may change on resume, hidden from the ledger",
    "output": "where results go and what they are called: may change on resume",
}


def _f(
    default: Any,
    help: str,
    role: str = "experiment",
    registry: str | None = None,
    split: bool = False,
    resume: bool | None = None,
    absent: Any = None,
) -> Any:
    """A dataclass field (hence ``noqa: RUF009`` where ruff cannot tell) with its ``--help``
    text, :data:`ROLES` role, the registry kind its names come from, ``split`` when it decides
    which people validate, ``resume``: whether ``--resume`` may change it (default: every role
    but ``experiment``), and ``absent``: the value runs saved before the field existed trained
    with, where that differs from ``default``."""
    if role not in ROLES:
        raise ValueError(f"unknown field role {role!r}; valid: {sorted(ROLES)}")
    may_resume = role != "experiment" if resume is None else resume
    meta = dict(
        help=help, role=role, registry=registry, split=split, resume=may_resume, absent=absent
    )
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Fields:
    """The fields of ``Config``, without its methods."""

    # data
    data_dir: str | None = _f(
        None, "competition data folder; none = the synthetic fixture", split=True
    )
    fixes: str | list[str] | None = _f(  # noqa: RUF009
        None, "label fixes: builtin, a CSV, or a list a,b", split=True
    )
    fold: int | None = _f(None, "validate on fold k of n_folds; none = holdout by val_ratio")
    n_folds: int = _f(5, "number of person-level folds", split=True)
    folds: str | None = _f(  # a resumed K-fold parent may train more (or fewer) of its folds
        None,
        "K-fold: train folds all (or e.g. 0,2) under one parent folder; none = one run",
        resume=True,
    )
    val_ratio: float = _f(0.2, "share of people held out when fold is none")
    age_thresholds: tuple[int, int] = _f((30, 60), "training age-group boundaries (val: 30 60)")
    limit_people: int | None = _f(None, "use only the first N people (quick runs)", split=True)
    strict_data: bool = _f(True, "stop at a bad train row or picture; off: skip them, warn once")
    pseudo_labels: str | list[str] | None = _f(  # noqa: RUF009
        None,
        "stage 2: confident eval predictions of this run folder, K-fold parent or "
        "test_probs.csv (a list a,b: their mean) join training under their predicted class",
    )
    pseudo_threshold: float = _f(0.9, "a pseudo-label needs a top probability above this")
    pseudo_targets: Literal["hard", "soft"] = _f(
        "hard",
        "what a pseudo-labelled picture trains on: hard (its top class) or soft (stage 1's "
        "probabilities)",
    )
    seed: int = _f(
        42,
        "seed of the model init, shuffling, augmentation and (unless split_seed) the split",
        split=True,
    )
    split_seed: int | None = _f(
        None, "seed of the split alone (which people validate); none = --seed", split=True
    )
    deterministic: bool = _f(True, "deterministic torch algorithms (same config = same result)")
    # model
    model: str = _f(
        "resnet10t",
        "timm model name (timm.list_models()), torchvision/<name> (e.g. torchvision/resnet18) "
        "or a model registered with kit.register_model",
    )
    head: str = _f(
        "single",
        "single (18-way), multi (mask/gender/age), one task (mask, gender, age) or a registered "
        "head",
        registry="head",
    )
    pretrained: bool = _f(
        False, "start from timm's pretrained weights (Hugging Face cache, else download)"
    )
    pretrained_file: str | None = _f(  # a resumed run's weights come from last.pt, not this file
        None, "local weights file instead of the hub (implies --pretrained)", resume=True
    )
    # images
    crop: tuple[float, float] = _f(
        (0.625, 0.667), "centre crop as a fraction of (height, width): 320x256 of 512x384"
    )
    image_size: tuple[int, int] = _f((64, 48), "network input (height, width) after the crop")
    preset: str = _f("base", "augmentation preset: base or strong", registry="preset")
    device_aug: str = _f(
        "none",
        "training batches augmented on the model's device: none, flip or strong",
        registry="device_aug",
    )
    cache_flips: bool = _f(False, "cache mirror images too; training picks one or the other")
    # loss
    loss: str = _f(
        "cross_entropy", "loss of a single head, e.g. focal or 0.5*focal+0.5*f1", registry="loss"
    )
    head_losses: dict[str, str] = _f(  # noqa: RUF009
        {},
        "multi-head losses, e.g. age=focal,mask=cross_entropy (others use --loss)",
        registry="loss",
    )
    head_weights: dict[str, float] | None = _f(None, "multi-head loss weights, e.g. age=2")  # noqa: RUF009
    loss_kwargs: dict[str, Any] = _f({}, "extra loss arguments, e.g. gamma=2,smoothing=0.1")  # noqa: RUF009
    # optimisation
    optimizer: str = _f(
        "adamw",
        "any timm optimizer (timm.optim.list_optimizers()), e.g. adamw, sgd, lion, lamb",
        registry="optimizer",
    )
    lr: float = _f(3e-3, "peak learning rate")
    weight_decay: float = _f(1e-4, "weight decay")
    momentum: float = _f(0.9, "SGD momentum")
    layer_decay: float | None = _f(
        None, "layer-wise lr decay: each backbone block at this times the rate above, e.g. 0.8"
    )
    backbone_lr_scale: float = _f(
        1.0, "backbone learning rate as a fraction of --lr (the head trains at --lr), e.g. 0.1"
    )
    freeze_epochs: int = _f(
        0, "head-only epochs first (backbone frozen), then everything (fastai's fine_tune)"
    )
    scheduler: str = _f(
        "cosine", "cosine, step, plateau or none (all after warmup)", registry="scheduler"
    )
    scheduler_kwargs: dict[str, float] = _f(  # noqa: RUF009
        {}, "step: step_epochs,gamma; plateau: patience,factor; cosine: min_lr_ratio"
    )
    warmup_epochs: float = _f(0.5, "linear warmup length in epochs (fractions allowed)")
    epochs: int = _f(20, "training epochs")
    batch_size: int = _f(32, "training batch size")
    eval_batch_size: int = _f(128, "validation / inference batch size", role="machine")
    grad_accum: int = _f(1, "accumulate gradients over this many batches")
    grad_clip: float = _f(0.0, "clip the gradient norm to this (0 = off)")
    sampler: str = _f(
        "plain", "plain (shuffle) or balanced (class-balanced sampling)", registry="sampler"
    )
    amp: bool = _f(True, "mixed precision (autocast) on CUDA; on CPU with --amp-dtype bfloat16")
    amp_dtype: Literal["auto", "bfloat16", "float16"] = _f(
        "auto",
        "autocast dtype: auto (bfloat16 on GPUs that support it, else float16), bfloat16 (also "
        "on CPU) or float16 (CUDA, with a gradient scaler)",
        absent="float16",  # runs saved before the field autocast in float16 on CUDA
    )
    early_stopping: int = _f(0, "stop after this many epochs without val F1 gain (0 = off)")
    tta: str = _f(
        "none",
        "test-time views averaged for validation and test: none, hflip, shift, scale, "
        "center_face (centre and face crop), or a product such as hflip+shift",
        registry="tta",
    )
    # techniques
    mix: str = _f(
        "none",
        "batch mixing: none, mixup, cutmix, mixup_cutmix, vhalves (left / right halves) or "
        "hhalves (top / bottom halves)",
        registry="mix",
    )
    mix_pairs: Literal["random", "same_class"] = _f(
        "random", "mixing partners: random, or same_class (the same 18-way class)"
    )
    mix_alpha: float = _f(1.0, "mixup / cutmix: lam ~ Beta(mix_alpha, mix_alpha)")
    mix_lam: tuple[float, float] = _f(
        (0.4, 0.6), "vhalves / hhalves: range of the cut position (share of the width / height)"
    )
    mix_prob: float = _f(1.0, "share of the training batches that are mixed")
    mix_off_epochs: int = _f(0, "train the last N epochs without mixing")
    drop_ages: str | None = _f(
        None, "leave training people of these ages out, e.g. 27-29,57-59 (validation keeps all)"
    )
    ema: bool = _f(False, "validate, keep and submit an exponential moving average of the weights")
    ema_decay: float = _f(0.999, "EMA decay per optimizer step (its maximum with ema_warmup)")
    ema_warmup: bool = _f(True, "EMA decay rising from 0 towards ema_decay (timm, power 3/4)")
    refit: Literal["none", "continue", "all"] = _f(
        "none",
        "after training: none, continue (refit_epochs more on train + val people) or all "
        "(retrain on every person for the best epoch count)",
    )
    refit_epochs: int = _f(2, "epochs of refit=continue")
    # machine and output
    workers: int | str = _f(
        "auto", "data loader worker processes, or auto (from the CPU count)", role="machine"
    )
    cache: bool = _f(
        True,
        "decode, crop and resize every picture once into a memory-mapped cache",
        role="machine",
    )
    cache_dir: str | None = _f(
        None, "folder of the picture cache; none = <data folder>/cache", role="machine"
    )
    channels_last: bool = _f(
        False, "channels-last memory format (faster convolutions on GPUs)", role="machine"
    )
    compile: bool = _f(
        False,
        "torch.compile the training model (slow first steps; long GPU runs)",
        role="machine",
    )
    device: str = _f("auto", "auto, cpu, cuda, cuda:1, mps", role="machine")
    output_dir: str = _f("runs", "parent folder of run folders", role="output")
    name: str = _f("baseline", "run name (the run folder is <timestamp>_<name>)", role="output")
    keep_last: bool = _f(
        True,
        "keep last.pt when the run completes (only --resume needs it; best.pt always stays)",
        role="output",
    )
    max_steps_per_epoch: int | None = _f(None, "cap the training batches per epoch")
    smoke: bool = _f(False, "tiny end-to-end run on a tiny fixture (seconds)")
    quiet: bool = _f(False, "print only warnings", role="run")
    resume: str | None = _f(None, "continue the stopped run in this run folder", role="run")
    # pretrained weights and face crop (docs/pretrained.md, docs/faces.md)
    pretrained_tag: str | None = _f(
        None, "timm weight variant of --model, e.g. ra2_in1k; none = timm's default"
    )
    crop_mode: str = _f(
        "center",
        "center (--crop share of the picture) or face (around the detected face)",
        registry="crop_mode",
    )
    face_detector: str = _f(
        "skimage",
        "face crop: skimage, opencv, mtcnn, boxes (a CSV) or a registered one",
        registry="face_detector",
    )
    face_boxes: str | None = _f(
        None, "boxes CSV for --face-detector boxes; none = <data>/{train,eval}/faces.csv"
    )
    face_margin: float = _f(0.4, "face crop: share of the face box added on each side")
    crop_mix: float = _f(
        0.0,
        "share of training pictures shown under the other crop (face for a center run, center "
        "for a face run), so the model learns both for --tta center_face; 0 = off",
    )
    # tracking and search (docs/tracking.md, docs/search.md): they mirror or tag a run, and
    # change none of its results
    track: str | None = _f(
        None,
        "experiment trackers, a comma list of tensorboard, wandb, mlflow; none = off",
        role="run",
        registry="tracker",
    )
    mlflow_uri: str | None = _f(
        None,
        "MLflow tracking server or store, e.g. http://host:5000; none = MLflow's default",
        role="run",
    )
    study: str | None = _f(None, "the kit.tune study this run is a trial of", role="output")
    trial: int | None = _f(None, "the trial number of this run in its study", role="output")
