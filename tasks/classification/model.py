"""Classifier = registry backbone + global average pooling + linear head; cross-entropy loss."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from backbones.adapters import Classifier
from tasks.core.backbone import build_backbone

from .config import ClassificationConfig


def build_model(cfg: ClassificationConfig, info: dict[str, Any]) -> nn.Module:
    body = build_backbone(cfg.backbone, "image", in_channels=info["in_channels"])
    return Classifier(body, info["num_classes"], cfg.model.dropout)


def loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor],
         cfg: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    images, labels = batch
    logits = model(images)
    value = nn.functional.cross_entropy(logits, labels)
    return value, {"acc": (logits.argmax(1) == labels).float().mean()}  # a device tensor: no sync per step
