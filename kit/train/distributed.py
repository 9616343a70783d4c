"""The training process: its place among several processes on one machine (``torchrun``: join,
agree, gather, leave), its device, its logging and the module it trains.

Under ``torchrun --nproc_per_node=N`` (docs/multi-gpu.md) each process joins a process group
(nccl on CUDA, gloo on CPU), trains a ``DistributedDataParallel`` model on its share of every
epoch and predicts a ``DistributedSampler`` share of the validation set; the shares are gathered
by row number, so every process scores the whole set. Only rank 0 writes and prints; the
others learn the run folder's path from it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler

if TYPE_CHECKING:
    from kit.config import Config

__all__ = [
    "SINGLE",
    "ChannelsLastInput",
    "DistContext",
    "barrier",
    "broadcast",
    "from_env",
    "gather_rows",
    "init",
    "is_main_process",
    "mean",
    "predict_sharded",
    "prepare_model",
    "setup_logging",
    "shard_rows",
    "teardown",
    "training_module",
]

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    owns_group: bool = False  # this context created the process group, so teardown ends it

    @property
    def enabled(self) -> bool:
        """Whether there are several processes."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and prints (rank 0)."""
        return self.rank == 0


#: The context of an ordinary, single-process run.
SINGLE = DistContext()


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name, "")
    if text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r}; expected an integer") from None


def from_env(env: Mapping[str, str] | None = None) -> DistContext:
    """The context torchrun describes in ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` (none: one
    process)."""
    env = os.environ if env is None else env
    world = _env_int(env, "WORLD_SIZE", 1)
    rank = _env_int(env, "RANK", 0)
    local = _env_int(env, "LOCAL_RANK", rank)
    if world < 1 or not 0 <= rank < world or local < 0:
        raise ValueError(
            f"WORLD_SIZE={world}, RANK={rank}, LOCAL_RANK={local}; expected WORLD_SIZE >= 1 and "
            f"0 <= RANK < WORLD_SIZE (as torchrun sets them)"
        )
    return DistContext(rank, world, local)


def is_main_process() -> bool:
    """Whether this process is rank 0 of a torchrun job, or not under torchrun at all."""
    return from_env().is_main


def init(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the process group torchrun set up (if any); return the context and this process's
    device (``cuda`` becomes ``cuda:LOCAL_RANK``: one GPU per process)."""
    ctx = from_env()
    if not ctx.enabled:
        return ctx, device
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", ctx.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if dist.is_initialized():
        return ctx, device
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")  # cpu, mps: gloo
    return DistContext(ctx.rank, ctx.world_size, ctx.local_rank, owns_group=True), device


def teardown(ctx: DistContext) -> None:
    """Leave the process group if :func:`init` created it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    """Wait until every process gets here."""
    if ctx.enabled:
        dist.barrier()


def broadcast(value: T, ctx: DistContext) -> T:
    """Rank 0's ``value`` (any picklable object), on every rank."""
    if not ctx.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean(value: float, ctx: DistContext) -> float:
    """The mean of ``value`` over the processes."""
    if not ctx.enabled:
        return value
    values: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(values, float(value))
    return float(np.mean(values))


def shard_rows(n: int, ctx: DistContext) -> np.ndarray:
    """This rank's rows of an ``n``-row table, as ``DistributedSampler`` (no shuffle) deals them:
    the last ranks may repeat the first rows so that every rank gets as many."""
    sampler = DistributedSampler(range(n), ctx.world_size, ctx.rank, shuffle=False)
    return np.asarray(list(sampler), dtype=np.int64)


def gather_rows(values: np.ndarray, rows: np.ndarray, n: int, ctx: DistContext) -> np.ndarray:
    """The full ``(n, ...)`` table from every rank's ``values`` of ``rows`` (on every rank);
    rows dealt twice (the sampler's padding) hold the same values and are kept once."""
    if not ctx.enabled:
        out = np.empty((n, *values.shape[1:]), dtype=values.dtype)
        out[rows] = values
        return out
    parts: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(parts, (np.asarray(rows), np.asarray(values)))
    shape, dtype = parts[0][1].shape[1:], parts[0][1].dtype
    out, seen = np.zeros((n, *shape), dtype=dtype), np.zeros(n, dtype=bool)
    for part_rows, part_values in parts:
        out[part_rows] = part_values
        seen[part_rows] = True
    if not seen.all():
        raise RuntimeError(f"gathered {seen.sum()} of {n} rows; a rank predicted too few")
    return out


def predict_sharded(
    predict_fn: Callable[[pd.DataFrame], np.ndarray], df: pd.DataFrame, ctx: DistContext
) -> np.ndarray:
    """``predict_fn(df)`` computed in shares over the processes, gathered in ``df`` row order."""
    if not ctx.enabled:
        return predict_fn(df)
    rows = shard_rows(len(df), ctx)
    return gather_rows(predict_fn(df.iloc[rows]), rows, len(df), ctx)


# ---- this process: its logging and the module it trains (its device: kit.device) -----
def setup_logging(quiet: bool) -> logging.Logger:
    """The ``kit`` logger at INFO (WARNING when quiet), printing plain lines to stdout when
    nothing else (an application, pytest) has configured logging."""
    log = logging.getLogger("kit")
    log.setLevel(logging.WARNING if quiet else logging.INFO)
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.propagate = False
    return log


class ChannelsLastInput(nn.Module):
    """``model(x)`` with ``x`` in channels-last layout (the layout fast GPU convolutions use)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> Any:
        return self.model(x.contiguous(memory_format=torch.channels_last))


def prepare_model(model: nn.Module, cfg: Config) -> nn.Module:
    """``model`` with its weights in channels-last layout when ``cfg.channels_last`` (in place)."""
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def training_module(
    model: nn.Module, cfg: Config, ctx: DistContext, device: torch.device
) -> nn.Module:
    """What the training step calls: ``model`` with channels-last input, wrapped for several
    processes, compiled, as ``cfg`` asks. It shares ``model``'s parameters, so checkpoints and
    validation use the plain ``model`` with plain weight names."""
    module: nn.Module = ChannelsLastInput(model) if cfg.channels_last else model
    if ctx.enabled:  # head-only epochs leave the backbone without gradients: DDP must not wait
        ids = [device.index] if device.type == "cuda" else None
        unused = getattr(cfg, "freeze_epochs", 0) > 0
        module = nn.parallel.DistributedDataParallel(
            module, device_ids=ids, find_unused_parameters=unused
        )
    if cfg.compile:
        module = torch.compile(module)
    return module
