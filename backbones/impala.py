"""IMPALA CNN (Espeholt et al. 2018) for pixel observations in reinforcement learning.

Three stacks, each ``conv3x3 -> maxpool 3x3/2 -> 2 residual blocks`` where a block is
``x + conv(relu(conv(relu(x))))`` (pre-activation, no normalisation by default).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import Backbone, FeatureInfo
from .blocks import BlockOptions, ResidualBlock, init_residual_blocks, make_norm, resolve_options, zero_last_scale


class ImpalaBlock(ResidualBlock):
    """``x + conv(relu(conv(relu(x))))``, optionally normalised."""

    post_activation = False

    def __init__(self, opts: BlockOptions, channels: int) -> None:
        super().__init__(opts, channels, channels, stride=1)
        bias = opts.norm == "none"
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=bias)
        self.bn1 = make_norm(opts.norm, channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=bias)
        self.bn2 = make_norm(opts.norm, channels)

    def zero_init_last(self) -> None:
        zero_last_scale(self.bn2, self.conv2)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(self.conv1(torch.relu(x)))
        return self.bn2(self.conv2(torch.relu(out)))


class ImpalaCNN(Backbone):
    """Three conv + max-pool + 2-residual-block stacks; stage strides 2, 4, 8.

    There is no stem: ``stem_info`` describes the input itself (stride 1), and every stack
    starts with its own conv and pool.
    """

    default_input_size = (84, 84)

    def __init__(self, channels: Sequence[int] = (16, 32, 32), *, in_channels: int = 4,
                 blocks_per_stack: int = 2, width: float = 1.0, shortcut: str = "identity",
                 norm: str = "none", drop_path: float = 0.0, residual_scale: float | str = 1.0,
                 zero_init_last: bool = False, gate: str | None = None) -> None:
        super().__init__(in_channels)
        self.stem = nn.Identity()
        self.stem_info = FeatureInfo(in_channels, 1, "stem")
        per_block = resolve_options(len(channels) * blocks_per_stack, drop_path=drop_path,
                                    residual_scale=residual_scale, shortcut=shortcut, norm=norm,
                                    zero_init_last=zero_init_last, gate=gate)
        in_ch, stride = in_channels, 1
        for i, c in enumerate(channels, start=1):
            c = max(4, int(c * width))
            opts = per_block[(i - 1) * blocks_per_stack:i * blocks_per_stack]
            stack = nn.Sequential(nn.Conv2d(in_ch, c, 3, 1, 1), nn.MaxPool2d(3, 2, 1),
                                  *[ImpalaBlock(o, c) for o in opts])
            setattr(self, f"stack{i}", stack)
            in_ch, stride = c, stride * 2
            self.feature_info.append(FeatureInfo(c, stride, f"stack{i}"))
        init_residual_blocks(self)

    def head_norm(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)
