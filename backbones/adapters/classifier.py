"""Backbone + global average pooling + linear head: the classification (and Q-value) head."""

from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """Pools the last stage over its spatial / time axes and applies a linear layer."""

    def __init__(self, backbone: nn.Module, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.fc = nn.Linear(backbone.num_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone(x)[-1]
        if feats.dim() > 2:  # a reduction over the spatial / time axes: no copy of a channels-last map
            feats = feats.mean(tuple(range(2, feats.dim())))
        return self.fc(self.dropout(feats))
