"""Classifier = registry backbone + global average pooling + linear head; cross-entropy loss."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

import backbones
from backbones.adapters import Classifier
from tasks.core.errors import UserError

from .config import ClassificationConfig


def build_model(cfg: ClassificationConfig, info: dict[str, Any]) -> nn.Module:
    name = cfg.backbone.name
    if name in backbones.names() and backbones.entry(name).modality != "image":
        raise UserError(f"backbone.name={name!r} is a {backbones.entry(name).modality} backbone; "
                        f"pick an image one: {', '.join(backbones.names('image')[:8])} ...")
    kwargs = {"in_channels": info["in_channels"], **cfg.backbone.create_kwargs()}
    return Classifier(backbones.create(name, **kwargs), info["num_classes"], cfg.model.dropout)


def loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    images, labels = batch
    logits = model(images)
    value = nn.functional.cross_entropy(logits, labels)
    return value, {"acc": float((logits.argmax(1) == labels).float().mean())}
