"""kit.train.loop.Running: the batch loop's device-side loss sum, NaN check and running F1."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kit.metrics import macro_f1
from kit.train.loop import Running
from tests._triggers import assert_documented


def _logits(pred: torch.Tensor) -> torch.Tensor:
    out = torch.full((len(pred), 18), -5.0)
    out[torch.arange(len(pred)), pred] = 5.0
    return out


def test_loss_sum_and_running_f1_equal_the_per_step_figures():
    rng = np.random.default_rng(0)
    running = Running(torch.device("cpu"), counts=True)
    trues, preds, total = [], [], 0.0
    for _ in range(7):
        true, pred = (torch.from_numpy(rng.integers(0, 18, 5)) for _ in range(2))
        loss = torch.tensor(float(rng.random()))
        running.add(loss, len(true), _logits(pred), true)
        trues.append(true.numpy())
        preds.append(pred.numpy())
        total += loss.item() * len(true)  # what the loop used to read every step
    running.check(epoch=1, lr=0.1)
    assert running.loss_sum.item() == pytest.approx(total, rel=1e-12)
    assert running.f1() == pytest.approx(macro_f1(np.concatenate(trues), np.concatenate(preds)))


def test_the_first_non_finite_loss_is_named_by_its_batch():
    running = Running(torch.device("cpu"), counts=False)
    for value in (1.0, 2.0):
        running.add(torch.tensor(value), 4, None, None)
    running.check(3, lr=0.1)  # batches 0 and 1 are fine
    for value in (0.5, float("inf"), float("nan")):
        running.add(torch.tensor(value), 4, None, None)
    with pytest.raises(FloatingPointError, match=r"loss is inf at epoch 3, batch 3; .*0\.1"):
        running.check(3, lr=0.1)


def test_a_nan_loss_in_the_first_batch_is_refused_naming_epoch_1_and_batch_0():
    running = Running(torch.device("cpu"), counts=False)
    running.add(torch.tensor(float("nan")), 4, None, None)
    with pytest.raises(FloatingPointError, match="training loss is nan at epoch 1, batch 0") as err:
        running.check(1, lr=0.1)
    assert_documented("loss-not-finite", str(err.value))
