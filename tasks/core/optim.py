"""Optimizers and learning-rate schedules from :class:`OptimConfig`."""

from __future__ import annotations

import math

import torch
from torch import nn

import backbones

from .config import OptimConfig
from .errors import UserError


def _split(params: list[nn.Parameter], weight_decay: float, **extra: float) -> list[dict]:
    """No weight decay on norms and biases (1-D parameters), as is standard."""
    decay = [p for p in params if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in params if p.requires_grad and p.ndim <= 1]
    return [{"params": decay, "weight_decay": weight_decay, **extra},
            {"params": no_decay, "weight_decay": 0.0, **extra}]


def _param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """Weight-decay groups; with ``backbone_lr_scale != 1`` the backbone's get ``lr * scale`` (after the head's).

    The head's groups come first, so the logged learning rate (group 0) is the head's.
    """
    body = next((m for m in model.modules() if isinstance(m, backbones.Backbone)), None)
    if cfg.backbone_lr_scale == 1.0 or body is None:
        return _split(list(model.parameters()), cfg.weight_decay)
    if cfg.backbone_lr_scale < 0:
        raise UserError(f"optim.backbone_lr_scale={cfg.backbone_lr_scale} must be >= 0 (1 = the same lr as the head)")
    inside = {id(p) for p in body.parameters()}
    head = [p for p in model.parameters() if id(p) not in inside]
    return _split(head, cfg.weight_decay) + _split(list(body.parameters()), cfg.weight_decay,
                                                   lr=cfg.lr * cfg.backbone_lr_scale)


def build_optimizer(model: nn.Module, cfg: OptimConfig, fused: bool = False) -> torch.optim.Optimizer:
    """``optim.name`` over the model's learning parameters (frozen ones are left out).

    ``fused``: PyTorch's fused kernel, one call per step instead of one per tensor (CPU and
    CUDA); it pays off for small networks whose step is launch-bound (DQN's Q-networks).
    """
    groups = _param_groups(model, cfg)
    extra = {"fused": True} if fused else {}
    if cfg.name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                               **extra)
    if cfg.name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), **extra)
    if cfg.name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=tuple(cfg.betas), **extra)
    raise UserError(f"optim.name={cfg.name!r} is not valid; choose sgd, adamw or adam")


def lr_factor(step: int, total: int, cfg: OptimConfig) -> float:
    """Multiplier of ``cfg.lr`` at ``step`` (0-based) of ``total`` optimizer steps."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "step":
        return cfg.gamma ** sum(step >= m for m in cfg.milestones)
    progress = (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps)
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    if cfg.schedule == "poly":  # (1 - progress)^0.9, the DeepLab papers' schedule
        return (1 - min(1.0, progress)) ** 0.9
    if cfg.schedule == "onecycle":  # linear up over 30 %, cosine down (Smith 2018)
        t = step / max(1, total)
        if t < 0.3:
            return 0.04 + 0.96 * t / 0.3
        return 0.5 * (1 + math.cos(math.pi * (t - 0.3) / 0.7)) + 1e-4
    raise UserError(f"optim.schedule={cfg.schedule!r} is not valid; choose cosine, poly, step, onecycle or constant")


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int,
                    cfg: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    lr_factor(0, total_steps, cfg)  # validate the schedule name before training starts
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, cfg))
