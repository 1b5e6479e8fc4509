"""2-D residual networks: ImageNet-style (He et al. 2015, Table 1) and CIFAR-style (Sec. 4.2).

Both are stacks of stages built from the blocks in :mod:`backbones.blocks`; only the stem
and the stage widths differ. ``ImageNetResNet`` keeps torchvision's attribute names
(``conv1, bn1, layer1..layer4``) so torchvision state dicts load strictly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .base import Backbone, FeatureInfo
from .blocks import BlockOptions, block_class, init_residual_blocks, make_norm, resolve_options


def _make_stage(block: type, opts: list[BlockOptions], in_ch: int, planes: int,
                stride: int) -> tuple[nn.Sequential, int]:
    layers = []
    for i, o in enumerate(opts):
        layers.append(block(o, in_ch, planes, stride if i == 0 else 1))
        in_ch = planes * block.expansion
    return nn.Sequential(*layers), in_ch


def _init_weights(model: nn.Module) -> None:
    """He initialisation for convs (fan-out, as torchvision), unit scale for norms.

    Every layer is initialised here first; the blocks' own starting points (``zero_init_last``,
    the highway gate's carry bias) are applied afterwards by ``init_residual_blocks``, in
    timm's order, so no layer needs to be marked as "leave alone".
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    init_residual_blocks(model)


class _StagedResNet(Backbone):
    """Shared construction: stages of blocks with per-block options spread over depth."""

    def _build_stages(self, block: str, depths: Sequence[int], widths: Sequence[int],
                      strides: Sequence[int], in_ch: int, stem_stride: int,
                      options: dict) -> int:
        cls = block_class(block)
        per_block = resolve_options(sum(depths), **options)
        self.preact = block.startswith("preact")
        stride_so_far, start = stem_stride, 0
        for i, (n, planes, s) in enumerate(zip(depths, widths, strides), start=1):
            stage, in_ch = _make_stage(cls, per_block[start:start + n], in_ch, planes, s)
            start += n
            stride_so_far *= s
            setattr(self, f"layer{i}", stage)
            self.feature_info.append(FeatureInfo(in_ch, stride_so_far, f"layer{i}"))
        if self.preact:
            # Pre-activation nets end without a norm: add the final BN-ReLU (He et al. 2016).
            self.final_norm = make_norm(per_block[0].norm, in_ch)
        return in_ch

    def head_norm(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.final_norm(x)) if self.preact else x


class ImageNetResNet(_StagedResNet):
    """ImageNet-style ResNet: 7x7/2 stem + 3x3/2 max-pool, four stages (strides 4..32).

    The stem output (``stem_info``, stride 2) is taken before the max-pool, as U-Net style
    decoders want it; the pool is the first step of stage 0 (see ``forward_stage``).

    ``width`` multiplies the stage widths; Wide ResNet-50-2 / ResNeXt instead set
    ``width_per_group`` / ``groups`` on the bottleneck's 3x3 conv, as torchvision does.
    """

    def __init__(self, block: str = "basic", layers: Sequence[int] = (2, 2, 2, 2), *,
                 in_channels: int = 3, width: float = 1.0, shortcut: str = "identity",
                 norm: str = "batch", attention: str | None = None, gate: str | None = None,
                 drop_path: float = 0.0, residual_scale: float | str = 1.0,
                 zero_init_last: bool = True, groups: int = 1, width_per_group: int = 64) -> None:
        super().__init__(in_channels)
        stem = int(64 * width)
        self.conv1 = nn.Conv2d(in_channels, stem, 7, 2, 3, bias=norm == "none")
        self.bn1 = make_norm(norm, stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = [int(w * width) for w in (64, 128, 256, 512)]
        options = dict(shortcut=shortcut, norm=norm, attention=attention, gate=gate,
                       drop_path=drop_path, residual_scale=residual_scale,
                       zero_init_last=zero_init_last, groups=groups, width_per_group=width_per_group)
        # The stem is spread over conv1/bn1 (torchvision's names, so its state dicts load): no module.
        self.stem_info = FeatureInfo(stem, 2, "")
        self._build_stages(block, layers, widths, (1, 2, 2, 2), stem, 4, options)
        _init_weights(self)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """conv1-bn1-relu: the stride-2 map before the max-pool."""
        return self.relu(self.bn1(self.conv1(x)))

    def forward_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Stage 0 starts with the stem's max-pool (stride 2 -> 4), as in torchvision's forward."""
        if index == 0:
            x = self.maxpool(x)
        return super().forward_stage(index, x)


class CifarResNet(_StagedResNet):
    """CIFAR-style ResNet (He et al. 2015, Sec. 4.2): 3x3 stem, three stages of 16/32/64.

    ``depth = 6n + 2`` for basic blocks, ``9n + 2`` for bottlenecks. ``width`` multiplies the
    stage widths (Wide ResNet, Zagoruyko & Komodakis 2016: WRN-28-10 has n = 4 blocks per
    stage and width 10; it counts its shortcut convs in the depth, so it is built with
    ``blocks_per_stage``).
    """

    default_input_size = (32, 32)

    def __init__(self, block: str = "basic", depth: int = 20, *, in_channels: int = 3,
                 width: float = 1.0, shortcut: str = "identity", norm: str = "batch",
                 attention: str | None = None, gate: str | None = None, drop_path: float = 0.0,
                 residual_scale: float | str = 1.0, zero_init_last: bool = True,
                 groups: int = 1, width_per_group: int = 64,
                 blocks_per_stage: int | None = None) -> None:
        super().__init__(in_channels)
        per_layer = 9 if "bottleneck" in block else 6
        if blocks_per_stage is not None:  # Wide ResNets count depth as 6n+4
            depth = per_layer * blocks_per_stage + 2
        if depth < per_layer + 2 or (depth - 2) % per_layer:
            raise ValueError(
                f"depth={depth} is not valid for {block} blocks; use {per_layer}n+2 "
                f"(e.g. {per_layer * 3 + 2}, {per_layer * 9 + 2})"
            )
        n = (depth - 2) // per_layer
        preact = block.startswith("preact")
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=norm == "none")
        # A pre-activation net's first block normalises its own input.
        self.bn1 = nn.Identity() if preact else make_norm(norm, 16)
        self.stem_info = FeatureInfo(16, 1, "")  # conv1 (+ bn1 + ReLU)
        widths = [int(w * width) for w in (16, 32, 64)]
        options = dict(shortcut=shortcut, norm=norm, attention=attention, gate=gate,
                       drop_path=drop_path, residual_scale=residual_scale,
                       zero_init_last=zero_init_last, groups=groups, width_per_group=width_per_group)
        self._build_stages(block, (n, n, n), widths, (1, 2, 2), 16, 1, options)
        self.stem_relu = not preact
        _init_weights(self)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """conv1 (+ bn1 + ReLU; a pre-activation net leaves both to its first block)."""
        x = self.bn1(self.conv1(x))
        return torch.relu(x) if self.stem_relu else x


class EDSRBody(Backbone):
    """EDSR-style feature body for super-resolution (Lim et al. 2017): no norm, no striding.

    A 3x3 head conv, ``num_blocks`` basic blocks without batch norm (``norm="none"``) and
    with residual scaling, then a 3x3 conv whose output is added to the head's (the long
    skip). Upsampling belongs to the task; this returns the stride-1 feature map. The head
    conv is the stem (``stem_info``); the one stage is body + body conv + long skip.
    """

    default_input_size = (48, 48)

    def __init__(self, num_blocks: int = 16, channels: int = 64, *, in_channels: int = 3,
                 shortcut: str = "identity", norm: str = "none", drop_path: float = 0.0,
                 residual_scale: float | str = 1.0, zero_init_last: bool = False,
                 long_skip: bool = True) -> None:
        super().__init__(in_channels)
        self.conv1 = nn.Conv2d(in_channels, channels, 3, 1, 1)
        per_block = resolve_options(num_blocks, drop_path=drop_path, residual_scale=residual_scale,
                                    shortcut=shortcut, norm=norm, zero_init_last=zero_init_last)
        cls = block_class("basic")
        self.body = nn.Sequential(*[cls(o, channels, channels) for o in per_block])
        for blk in self.body:  # EDSR drops the ReLU after the merge
            blk.post_activation = False
        self.body_conv = nn.Conv2d(channels, channels, 3, 1, 1)
        self.long_skip = long_skip and shortcut != "none"
        self.stem_info = FeatureInfo(channels, 1, "conv1")
        self.feature_info.append(FeatureInfo(channels, 1, "body"))
        # No network-level init (EDSR keeps PyTorch's defaults); the blocks' own starting points still apply.
        init_residual_blocks(self)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """The head conv."""
        return self.conv1(x)

    def forward_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Blocks, body conv, then the long skip from the head conv's output (this stage's input)."""
        out = self.body_conv(self.body(x))
        return out + x if self.long_skip else out
