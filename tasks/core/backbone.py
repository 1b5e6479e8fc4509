"""Build a task's backbone from its ``backbone:`` config section: modality check, then freezing.

``backbone.frozen_bn`` turns every BatchNorm into torchvision's ``FrozenBatchNorm2d`` (fixed
statistics and affine, as torchvision fine-tunes detectors); ``backbone.trainable_stages=k``
lets only the last ``k`` stages learn (torchvision's ``trainable_backbone_layers``, timm's
``freeze``): earlier stages, and the stem with the first, stop learning and their BatchNorms
are frozen too, so a frozen stage is unchanged by training, statistics included. Both are
part of the model's structure, so a run's checkpoint rebuilds with the same modules.
Pretrained weights (``backbone.weights``) are loaded by :mod:`tasks.core.weights`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

import backbones

from .config import BackboneConfig
from .errors import UserError


class FrozenBatchNorm(FrozenBatchNorm2d):
    """torchvision's frozen BatchNorm for inputs of any rank (``(N, C)``, ``(N, C, T)``, ...)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.dim() - 2)
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        bias = self.bias - self.running_mean * scale
        return x * scale.reshape(shape) + bias.reshape(shape)


def frozen_copy(norm: nn.modules.batchnorm._BatchNorm) -> FrozenBatchNorm2d:
    """A frozen BatchNorm with ``norm``'s statistics and affine (torchvision's class for 2-D maps)."""
    frozen = (FrozenBatchNorm2d if isinstance(norm, nn.BatchNorm2d) else FrozenBatchNorm)(norm.num_features, norm.eps)
    if norm.affine:
        frozen.weight.copy_(norm.weight.detach())
        frozen.bias.copy_(norm.bias.detach())
    if norm.track_running_stats:
        frozen.running_mean.copy_(norm.running_mean)
        frozen.running_var.copy_(norm.running_var)
    return frozen


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm inside ``module`` by a frozen one with the same statistics."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm):
            setattr(module, name, frozen_copy(child))
        else:
            freeze_batch_norm(child)
    return module


def stage_modules(body: backbones.Backbone) -> list[list[str]]:
    """The backbone's top-level children grouped by stage, shallow to deep.

    A child declared before a stage goes with that stage (the stem with the first; a DenseNet
    transition, declared between two blocks, with the block it feeds); children declared after
    the last stage (a pre-activation net's final norm, EDSR's body conv) go with the last.
    """
    stages = body.stage_names()
    groups: list[list[str]] = [[] for _ in stages]
    pending: list[str] = []
    for name, _ in body.named_children():
        if name in stages:
            groups[stages.index(name)] += [*pending, name]
            pending = []
        else:
            pending.append(name)
    groups[-1] += pending
    return groups


def freeze_stages(body: backbones.Backbone, trainable: int) -> None:
    """Only the last ``trainable`` stages learn; ``-1`` leaves everything learning, ``0`` freezes all."""
    groups = stage_modules(body)
    if trainable < -1 or trainable > len(groups):
        raise UserError(f"backbone.trainable_stages={trainable} is not valid for a backbone of {len(groups)} "
                        f"stages; choose -1 (all learn) or 0..{len(groups)} (0 = frozen backbone)")
    if trainable < 0:
        return
    for group in groups[: len(groups) - trainable]:
        for name in group:
            child = getattr(body, name)
            child.requires_grad_(False)
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(body, name, frozen_copy(child))
            else:
                freeze_batch_norm(child)


def freeze_unreached_stages(body: backbones.Backbone, deepest: int) -> None:
    """Stages after ``deepest`` (and what follows the last stage) stop learning: for consumers that run
    the backbone only that deep (an FPN over early stages, a shallow SMP encoder).

    They never run, so they would never get a gradient, and DDP would wait for those gradients
    (or need ``find_unused_parameters``, a search over the graph every step).
    """
    for group in stage_modules(body)[deepest + 1:]:
        for name in group:
            getattr(body, name).requires_grad_(False)


def check_backbone(cfg: BackboneConfig, modality: str) -> None:
    """The ``backbone:`` section names a registered backbone of ``modality`` with options it takes.

    Nothing is built, so tasks call it before any data is generated or a run folder is made. A
    backbone of another modality (a sequence net for images, say) is a one-line error listing
    the ones that fit.
    """
    name = cfg.name
    try:
        entry = backbones.entry(name)  # a name that is not built in loads the installed plugins first
    except ValueError as err:
        raise UserError(str(err)) from None
    if entry.modality != modality:
        fitting = backbones.names(modality)
        shown = ", ".join(fitting[:8]) + (" ..." if len(fitting) > 8 else "")
        article = "an" if modality[0] in "aeiou" else "a"
        raise UserError(f"backbone.name={name!r} is a {entry.modality} backbone; "
                        f"this task needs {article} {modality} one: {shown}")
    try:
        backbones.registry.check_options(name, **cfg.create_kwargs())
    except ValueError as err:
        raise UserError(str(err)) from None


def build_backbone(cfg: BackboneConfig, modality: str, **defaults: Any) -> backbones.Backbone:
    """``backbones.create(cfg.name, **defaults, **cfg options)`` after :func:`check_backbone`, then
    ``frozen_bn`` and ``trainable_stages``."""
    check_backbone(cfg, modality)
    try:
        body = backbones.create(cfg.name, **{**defaults, **cfg.create_kwargs()})
    except ValueError as err:
        raise UserError(str(err)) from None
    if cfg.frozen_bn:
        freeze_batch_norm(body)
    freeze_stages(body, cfg.trainable_stages)
    return body
