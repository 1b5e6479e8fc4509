"""Learning-rate schedules and parameter groups, against hand-computed values."""

import math

import pytest
import torch

from tasks.core.config import OptimConfig
from tasks.core.errors import UserError
from tasks.core.optim import build_optimizer, lr_factor


def test_cosine_with_warmup() -> None:
    cfg = OptimConfig(schedule="cosine", warmup_steps=10)
    assert lr_factor(0, 110, cfg) == pytest.approx(0.1)
    assert lr_factor(9, 110, cfg) == pytest.approx(1.0)
    assert lr_factor(60, 110, cfg) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_factor(110, 110, cfg) == pytest.approx(0.0)


def test_step_schedule() -> None:
    cfg = OptimConfig(schedule="step", milestones=[32000, 48000], gamma=0.1)
    assert [lr_factor(s, 64000, cfg) for s in (0, 31999, 32000, 48000)] == pytest.approx([1, 1, 0.1, 0.01])


def test_poly_schedule_after_warmup() -> None:
    cfg = OptimConfig(schedule="poly", warmup_steps=10)  # DeepLab's (1 - t)^0.9
    assert lr_factor(9, 110, cfg) == pytest.approx(1.0)
    assert lr_factor(10, 110, cfg) == pytest.approx(1.0)
    assert lr_factor(60, 110, cfg) == pytest.approx(0.5**0.9)
    assert lr_factor(110, 110, cfg) == pytest.approx(0.0)


def test_bad_schedule_and_optimizer_names() -> None:
    with pytest.raises(UserError, match=r"optim\.schedule"):
        lr_factor(0, 10, OptimConfig(schedule="linear"))
    with pytest.raises(UserError, match=r"optim\.name"):
        build_optimizer(torch.nn.Linear(2, 2), OptimConfig(name="lamb"))


def test_no_weight_decay_on_norms_and_biases() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    groups = build_optimizer(model, OptimConfig(weight_decay=1e-4)).param_groups
    assert [len(g["params"]) for g in groups] == [1, 3] and groups[1]["weight_decay"] == 0.0
