"""Q-network = registry backbone (``resmlp`` for vectors, ``impala_cnn`` for frames) + Q-head.

The dueling head splits into a state value and action advantages, ``Q = V + A - mean(A)``
(Wang et al. 2016), so the value of a state is learned from every action taken in it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from tasks.core.backbone import build_backbone

from .config import DQNConfig


def _mlp(width: int, hidden: int, out: int) -> nn.Module:
    if hidden <= 0:
        return nn.Linear(width, out)
    return nn.Sequential(nn.Linear(width, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))


class QNetwork(nn.Module):
    """Observations -> one Q-value per action. uint8 frames are scaled to [0, 1] here."""

    def __init__(self, backbone: nn.Module, num_actions: int, obs_shape: tuple[int, ...], dueling: bool = True,
                 hidden: int = 256) -> None:
        super().__init__()
        self.backbone, self.pixels, self.dueling = backbone, len(obs_shape) == 3, dueling
        width = backbone.num_features
        if self.pixels:
            # As in IMPALA, the last stage is flattened whole: where the ball is matters.
            with torch.no_grad():
                width = backbone(torch.zeros(1, *obs_shape))[-1].flatten(1).shape[1]
        self.advantage = _mlp(width, hidden, num_actions)
        self.value = _mlp(width, hidden, 1) if dueling else None

    def features(self, obs: torch.Tensor) -> torch.Tensor:
        x = obs.float() / 255.0 if obs.dtype == torch.uint8 else obs.float()
        feats = self.backbone(x)[-1]
        return feats.flatten(1) if self.pixels else feats

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        h = self.features(obs)
        adv = self.advantage(h)
        if self.value is None:
            return adv
        return self.value(h) + adv - adv.mean(dim=1, keepdim=True)


def build_model(cfg: DQNConfig, info: dict[str, Any]) -> QNetwork:
    """The Q-network for an environment described by ``info`` (see :func:`data.env_info`)."""
    want = "image" if info["pixels"] else "vector"  # stacked frames, or a vector observation
    backbone = build_backbone(cfg.backbone, want, in_channels=int(info["obs_shape"][0]))
    return QNetwork(backbone, info["num_actions"], tuple(info["obs_shape"]), cfg.model.dueling, cfg.model.hidden)
