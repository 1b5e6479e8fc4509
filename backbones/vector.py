"""Residual MLP for low-dimensional vector inputs (e.g. RL observations).

Pre-norm blocks, ``x + F(LN(x))`` as in transformers' MLP sublayer: the identity path is
never normalised, so the shortcut carries the signal and its gradient unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Backbone, FeatureInfo
from .blocks import BlockOptions, ResidualBlock, init_residual_blocks, make_norm, resolve_options, zero_layer


class MLPBlock(ResidualBlock):
    """Pre-norm residual MLP block: ``x + W2 relu(W1 norm(x))``."""

    post_activation = False

    def __init__(self, opts: BlockOptions, width: int, expansion: int = 2) -> None:
        super().__init__(opts, width, width, stride=1, dims=0)
        self.norm = make_norm(opts.norm, width, dims=0)
        self.fc1 = nn.Linear(width, width * expansion)
        self.fc2 = nn.Linear(width * expansion, width)

    def zero_init_last(self) -> None:
        zero_layer(self.fc2)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(self.norm(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.merge(x, self.branch(x))
        # A plain MLP still needs a non-linearity between its layers.
        return out if self.opts.residual else torch.relu(out)


class ResMLP(Backbone):
    """Linear stem to ``width``, ``depth`` pre-norm residual blocks, final norm.

    Each block is a stage (stride 1) so diagnostics and heads can tap any depth; the stem
    is the linear layer (+ ReLU).
    """

    modality = "vector"

    def __init__(self, *, in_channels: int = 4, width: int = 128, depth: int = 4, expansion: int = 2,
                 shortcut: str = "identity", norm: str = "layer", drop_path: float = 0.0,
                 residual_scale: float | str = 1.0, zero_init_last: bool = True,
                 gate: str | None = None) -> None:
        super().__init__(in_channels)
        if depth < 1 or width < 1:
            raise ValueError(f"depth={depth}, width={width} are not valid; give positive integers")
        self.stem = nn.Sequential(nn.Linear(in_channels, width), nn.ReLU(inplace=True))
        self.stem_info = FeatureInfo(width, 1, "stem")
        per_block = resolve_options(depth, drop_path=drop_path, residual_scale=residual_scale,
                                    shortcut=shortcut, norm=norm, zero_init_last=zero_init_last,
                                    gate=gate)
        for i, opts in enumerate(per_block, start=1):
            setattr(self, f"block{i}", MLPBlock(opts, width, expansion))
            self.feature_info.append(FeatureInfo(width, 1, f"block{i}"))
        self.final_norm = make_norm(norm, width, dims=0)
        init_residual_blocks(self)

    def head_norm(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.final_norm(x))
