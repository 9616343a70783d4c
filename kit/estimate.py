"""``--estimate``: what a recipe's run will cost, measured before it is paid for.

On a sample of the run's pictures (a few hundred; 48 with ``--smoke``) it builds the face boxes
and the picture cache in a temporary folder, trains the recipe's own trainer a few dozen steps
and predicts with the run's TTA; each measurement is scaled to the whole run (face boxes, cache,
one epoch, validation, one fold, all folds, inference), beside the peak memory and the cache's
disk against the disk free. A step out of GPU memory is retried at half the batch, down to one.
Nothing is written where runs, caches or face boxes live. The recipe's own ``kit.fit`` call
measures instead of training (:data:`kit.train.fit.INSTEAD_OF_FIT`), so what a recipe changes
(a ``--smoke`` stand-in model, its transform) is what is measured.
"""

from __future__ import annotations

import gc
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from kit import splits as kit_splits
from kit.bench.measure import PeakMemory, StepClock, sample_rows, sync
from kit.config import Config, parse_folds
from kit.data._common import usable_cores
from kit.data.dataset import load_rgb
from kit.data.image_cache import cache_dir_for
from kit.data.pictures import PreparedLoader, build_run_cache
from kit.data.sampling import resolve_workers, train_loader
from kit.device import pick_amp, resolve_device, seed_everything
from kit.faces import boxes_path, face_boxes, folder_pictures
from kit.models import Weights, head_target, resolve_weights
from kit.optim import REFITS, epoch_steps
from kit.splits import drop_ages
from kit.train.distributed import SINGLE, training_module
from kit.train.fit import Measured
from kit.train.forward import predict_frame
from kit.train.loop import train_one_epoch
from kit.train.setup import RunPictures, build_trainer, check, train_dataset, training_reader
from kit.transforms import CROP_MODES

__all__ = ["Estimate", "Stage", "estimate", "format_estimate", "report", "time_train_steps"]

#: pictures measured (face boxes, cache) and training steps timed, after untimed warm-up ones
SAMPLE, STEPS, WARMUP = 300, 24, 3
SMOKE_SAMPLE, SMOKE_STEPS, SMOKE_WARMUP = 48, 4, 1
_OOM = torch.cuda.OutOfMemoryError  # torch.OutOfMemoryError in recent torch: the same class


@dataclass
class Stage:
    """One row: what was measured, and the time it projects for the whole run (None: the run
    does not do it)."""

    name: str
    measured: str
    seconds: float | None
    note: str = ""


@dataclass
class Estimate:
    """What :func:`estimate` measured and projected."""

    settings: str
    sample: int  # pictures measured
    pictures: int  # pictures of the run (training, validation and evaluation)
    stages: list[Stage]
    batch_size: int  # the batch that was timed (the config's, or the largest that fit)
    asked_batch: int  # the config's batch
    cache_bytes: int  # the cache the whole run needs (0 without --cache)
    disk_free: int
    disk_at: Path
    peak_gpu: int | None = None  # bytes allocated at most during the timed steps (CUDA)
    gpu_total: int | None = None
    peak_host_mib: float | None = None  # this process and its loader workers
    notes: list[str] = field(default_factory=list)

    def stage(self, name: str) -> Stage:
        """The stage called ``name``."""
        return next(s for s in self.stages if s.name == name)


def time_train_steps(
    cfg: Config,
    rows: pd.DataFrame,
    pictures: RunPictures,
    transform: Any,
    steps: int,
    warmup: int,
    *,
    device: torch.device,
    weights: Weights | None = None,
) -> tuple[float, torch.nn.Module]:
    """Seconds of ``steps`` training steps of ``cfg``'s own trainer (model, starting
    ``weights``, loss, sampler, loader, AMP) on ``device`` after ``warmup`` untimed ones, and
    the model they trained."""
    t = build_trainer(cfg, rows, pictures, transform, device=device, pretrained=weights)
    t.parts.module = training_module(t.parts.model, cfg, SINGLE, device)
    mixer = t.start_epoch(cfg, 1)
    clock = StepClock(t.loader, warmup + steps, warmup, device)
    try:
        train_one_epoch(t.parts, clock, t.criterion, cfg, 1, mixer)
    finally:
        t.close()
    sync(device)
    return time.perf_counter() - clock.started, t.parts.evaluated


def _free_disk(folder: Path) -> tuple[int, Path]:
    at = folder.expanduser().resolve()
    while not at.exists() and at != at.parent:
        at = at.parent
    return shutil.disk_usage(at).free, at


def _largest_batch(
    cfg: Config, train_rows: pd.DataFrame, run: Callable[[Config, pd.DataFrame], Any], log: Any
) -> tuple[int, Any]:
    """``run`` at the config's batch, halved after each out-of-memory error until it fits."""
    batch = cfg.batch_size
    while True:
        at = cfg.replace(batch_size=batch)
        try:
            return batch, run(at, train_rows)
        except _OOM:
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if batch == 1:
                raise ValueError(
                    "out of memory at batch size 1: use a smaller model or --image-size, or "
                    "turn on --amp"
                ) from None
            log(f"estimate: batch {batch} ran out of memory; trying {batch // 2}")
            batch //= 2


def estimate(
    cfg: Config,
    train_transform: Any = None,
    *,
    sample: int | None = None,
    log: Callable[[str], None] = print,
) -> Estimate:
    """Measure ``cfg``'s run on ``sample`` of its pictures (default :data:`SAMPLE`, or
    :data:`SMOKE_SAMPLE` with ``cfg.smoke``) and project each stage to the whole run."""
    checked = check(cfg)
    device = resolve_device(checked.device)
    weights = resolve_weights(checked)
    seed_everything(checked.seed)
    # a K-fold run trains each fold on (n-1)/n of the people: fold 0 stands for them
    splits = kit_splits.load_splits(
        checked.replace(folds=None, fold=0) if checked.folds else checked
    )
    paths = kit_splits.run_paths(splits)
    n = min(len(paths), sample or (SMOKE_SAMPLE if checked.smoke else SAMPLE))
    rng = np.random.default_rng(checked.seed)
    chosen = sorted(str(p) for p in rng.choice(paths, n, replace=False))
    smoke = checked.smoke
    steps, warmup = (SMOKE_STEPS, SMOKE_WARMUP) if smoke else (STEPS, WARMUP)
    stages: list[Stage] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="kit-estimate-") as tmp:
        # the sample's boxes and cache go to a folder of their own, never the run's
        small = checked.replace(cache_dir=tmp, max_steps_per_epoch=None, quiet=True)
        faces = None
        if CROP_MODES.get(checked.crop_mode).needs_boxes:
            folder = folder_pictures(splits.data_dir, checked.strict_data)
            stored = boxes_path(checked, splits.data_dir, folder).is_file()
            log(f"estimate: face boxes of {n} pictures ({checked.face_detector}) ...")
            t0 = time.perf_counter()
            faces = face_boxes(small, splits.data_dir, chosen, usable_cores(), progress=False)
            took = time.perf_counter() - t0
            what = f"{n} pictures in {_time(took)}"
            whole = 0.0 if stored else took / n * len(folder)
            note = "stored for this data folder: reused" if stored else f"{len(folder)} pictures"
            stages.append(Stage(f"face boxes ({checked.face_detector})", what, whole, note))
        else:
            stages.append(Stage("face boxes", "-", None, f"not needed ({checked.crop_mode} crop)"))
        cache, cache_bytes = None, 0
        own = None if faces is None and not checked.cache else PreparedLoader(small, faces)
        if checked.cache:
            log(f"estimate: cache of {n} pictures ...")
            t0 = time.perf_counter()
            cache = build_run_cache(small, chosen, tmp, progress=False, loader=own)
            took = time.perf_counter() - t0
            sample_bytes = sum(f.stat().st_size for f in Path(tmp).glob("*.npy"))
            mix = 2 if checked.crop_mix else 1  # --crop-mix caches the other crop too
            cache_bytes = round(sample_bytes / n * len(paths) * mix)
            what = f"{n} pictures in {_time(took)}"
            stages.append(
                Stage("cache build", what, took / n * len(paths) * mix, f"{len(paths)} pictures")
            )
        else:
            stages.append(
                Stage("cache build", "-", None, "--no-cache: pictures decoded every epoch")
            )
        # the sample's loaders, as RunPictures.for_run makes a run's
        pictures = RunPictures(load_rgb, None, None)
        if own is not None:
            pictures = RunPictures(training_reader(small, own, cache), cache or own, cache, faces)

        # training steps at the recipe's batch (or the largest that fits)
        train = splits.training[splits.training["path"].astype(str).isin(chosen)]
        train = train if len(train) else splits.training

        def run(at: Config, rows: pd.DataFrame) -> tuple[float, torch.nn.Module]:
            need = (steps + warmup) * at.batch_size * at.grad_accum
            many = sample_rows(rows, max(len(rows), need), checked.seed)
            return time_train_steps(
                at, many, pictures, train_transform, steps, warmup, device=device, weights=weights
            )

        log(f"estimate: {steps} training steps at batch {checked.batch_size} on {device} ...")
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with PeakMemory() as host:
            batch, (train_s, model) = _largest_batch(small, train, run, log)
        peak_gpu = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
        total_gpu = torch.cuda.get_device_properties(device).total_memory if peak_gpu else None
        at_batch = checked.replace(batch_size=batch)
        full = drop_ages(splits.training, checked.drop_ages)
        dataset = train_dataset(at_batch, full, head_target(checked.head), pictures)
        loader = train_loader(dataset, at_batch, torch.Generator())
        per_epoch = epoch_steps(loader, at_batch.max_steps_per_epoch)
        step_s = train_s / steps
        epoch_s = step_s * per_epoch
        stages.append(
            Stage("one epoch", f"{steps} steps in {_time(train_s)}", epoch_s, f"{per_epoch} steps")
        )

        # predictions as the run makes them: with its TTA, at its evaluation batch
        val = splits.val[splits.val["path"].astype(str).isin(chosen)]
        val = val if len(val) else splits.val
        rows = sample_rows(val, max(len(val), 2 * checked.eval_batch_size), checked.seed)
        predict_frame(model, rows.iloc[:8], small, tta=checked.tta, prepared=pictures.eval)
        sync(device)
        t0 = time.perf_counter()
        predict_frame(model, rows, small, tta=checked.tta, prepared=pictures.eval)
        sync(device)
        per_picture = (time.perf_counter() - t0) / len(rows)
        del model
    measured = f"{len(rows)} pictures in {_time(per_picture * len(rows))}"
    n_val, n_eval = len(splits.val), 0 if splits.eval is None else len(splits.eval)
    val_s, eval_s = per_picture * n_val, per_picture * n_eval
    stages.append(
        Stage(f"validation (tta {checked.tta})", measured, val_s, f"{n_val} pictures, every epoch")
    )
    stages.append(
        Stage(f"TTA inference ({checked.tta})", measured, eval_s, f"{n_eval} evaluation pictures")
    )
    refit = REFITS.use(checked.refit)
    refit_s = 0.0
    if refit.config is not None:
        share = (len(splits.training) + len(splits.val)) / max(len(splits.training), 1)
        refit_s = refit.config(checked, checked.epochs).epochs * epoch_s * share
        notes.append(f"refit {checked.refit}: {_time(refit_s)} of each fold")
    fold_s = checked.epochs * (epoch_s + val_s) + val_s + refit_s + eval_s
    stages.append(
        Stage("one fold", "-", fold_s, f"{checked.epochs} epochs, validation, predictions")
    )
    folds = len(parse_folds(checked.folds, checked.n_folds)) if checked.folds else 1
    once = sum(s.seconds or 0.0 for s in stages[:2])  # face boxes and cache: once per data folder
    stages.append(
        Stage("all folds", "-", folds * fold_s + once, f"{folds} fold(s) + face boxes + cache")
    )
    if checked.early_stopping:
        notes.append(f"early stopping ({checked.early_stopping} epochs) may end a fold sooner")
    free, at = _free_disk(cache_dir_for(checked.cache_dir, splits.data_dir))
    amp = pick_amp(checked, device).name
    amp = amp if amp != "float32" else f"off on {device.type}" if checked.amp else "off"
    settings = (
        f"{checked.name}: {checked.model} at {'x'.join(map(str, checked.image_size))}, batch "
        f"{checked.batch_size}, AMP {amp}, {resolve_workers(checked.workers)} workers, on {device}"
    )
    return Estimate(
        settings,
        n,
        len(paths),
        stages,
        batch,
        checked.batch_size,
        cache_bytes,
        free,
        at,
        peak_gpu,
        total_gpu,
        host.peak_mib,
        notes,
    )


def _time(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def format_estimate(est: Estimate) -> str:
    """The report: one line per stage, the memory, the disk check, the batch advice."""
    width = max(len(s.name) for s in est.stages)
    lines = [
        f"estimate of {est.settings}",
        f"measured on {est.sample} of the run's {est.pictures} pictures; projected for the run:",
    ]
    for s in est.stages:
        projected = "-" if s.seconds is None else _time(s.seconds)
        how = f"measured: {s.measured}; {s.note}" if s.measured != "-" else s.note
        lines.append(f"  {s.name:<{width}}  {projected:>9}   {how}")
    memory = []
    if est.peak_gpu is not None:
        memory.append(f"GPU {_size(est.peak_gpu)} of {_size(est.gpu_total or 0)}")
    if est.peak_host_mib is not None:
        memory.append(f"host {_size(est.peak_host_mib * 2**20)} (with loader workers)")
    if memory:
        lines.append(f"peak memory while training: {', '.join(memory)}")
    if est.batch_size != est.asked_batch:
        accum = est.asked_batch // est.batch_size
        lines.append(
            f"out of memory at batch {est.asked_batch}: the largest that fit is {est.batch_size}; "
            f"pass --batch-size {est.batch_size} (with --grad-accum {accum} to keep "
            f"{est.asked_batch} pictures per update); the times above are at batch "
            f"{est.batch_size}"
        )
    if est.cache_bytes:
        ok = est.cache_bytes < est.disk_free
        lines.append(
            f"disk: the cache needs {_size(est.cache_bytes)}; {_size(est.disk_free)} free at "
            f"{est.disk_at}: "
            + ("enough" if ok else "NOT enough: free space or pass --cache-dir on a larger disk")
        )
    else:
        lines.append(f"disk: no cache (--no-cache); {_size(est.disk_free)} free at {est.disk_at}")
    lines += [f"note: {n}" for n in est.notes]
    lines.append("nothing was written: no run folder, no cache, no face boxes of the data folder")
    return "\n".join(lines)


def report(cfg: Config, train_transform: Any = None, *, sample: int | None = None) -> None:
    """``--estimate``: print :func:`format_estimate` of ``cfg``, then stop the recipe."""
    print(format_estimate(estimate(cfg, train_transform, sample=sample)), flush=True)
    raise Measured()
