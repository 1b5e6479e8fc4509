"""Residual Attention Network (Wang et al. 2017): a trunk modulated by a bottom-up top-down soft mask.

An attention module (Wang et al. Fig. 2 and 3) is::

    x -> p residual units -> trunk T(x): t residual units
                          -> mask M(x): max-pool / r units down to the coarsest level, r units and
                             bilinear upsampling back, a skip unit at each level, + T(x), then
                             BN-ReLU-1x1 conv twice and a sigmoid
    out = (1 + M(x)) * T(x)        attention residual learning (ARL, attention_residual=True)
    out = M(x) * T(x)              naive attention learning (NAL), the paper's ablation
    -> p residual units

ARL keeps an identity path through the mask (``M = 0`` passes the trunk through); NAL multiplies
by a mask in (0, 1) at every module, which the paper shows degrades with depth. The residual
units are this library's blocks (pre-activation bottlenecks, as the paper), so every block
option applies: ``shortcut="none"`` makes them plain units; ``zero_init_last``, ``drop_path``.

Layouts: ``imagenet`` (``attention56``/``attention92``: 7x7/2 stem, max-pool, stages at strides
4, 8, 16 with one, two or three modules each, a last stage of three units at stride 32) and
``cifar`` (3x3 stem, three stages at strides 1, 2, 4; the ImageNet net's last three units run at
the last CIFAR resolution). Depth counts the trunk: ``2 + 3 * (6 + sum(modules_per_stage) * (2p + t))``
for bottleneck units (stem conv and classifier, six stage units, ``2p + t`` units per module, three
layers per unit): 56 for modules ``(1, 1, 1)``, 92 for ``(1, 2, 3)``, with the paper's ``p, t = 1, 2``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import Backbone, FeatureInfo
from .blocks import BlockOptions, block_class, init_residual_blocks, make_norm, resolve_options
from .registry import register

LAYOUTS = ("imagenet", "cifar")


class SoftMaskBranch(nn.Module):
    """The bottom-up top-down mask of one attention module; ``forward(x, trunk) -> M(x)`` in (0, 1).

    ``depth`` max-pool steps go down (``r`` units after each), then back up: at each level ``r``
    units, bilinear upsampling (``align_corners=True``, Caffe's ``Interp``) to the level above,
    and an add of that level's down-path map plus one skip unit on it; at the top the trunk
    output is added instead. Two BN-ReLU-1x1 convs and a sigmoid give the mask.
    """

    def __init__(self, make_unit: Callable[[], nn.Module], channels: int, depth: int, r: int, norm: str) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"mask_depth={depth} is not valid; give at least 1 down-sampling step")
        self.depth = depth
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.down = nn.ModuleList(nn.Sequential(*[make_unit() for _ in range(r)]) for _ in range(depth))
        self.skips = nn.ModuleList(make_unit() for _ in range(depth - 1))
        self.up = nn.ModuleList(nn.Sequential(*[make_unit() for _ in range(r)]) for _ in range(depth))
        self.head = nn.Sequential(make_norm(norm, channels), nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 1, bias=False), make_norm(norm, channels),
                                  nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 1, bias=False))

    def forward(self, x: torch.Tensor, trunk: torch.Tensor) -> torch.Tensor:
        levels = [x]
        for down in self.down:
            levels.append(down(self.pool(levels[-1])))
        out = levels[-1]
        for level in range(self.depth - 1, -1, -1):  # from level + 1 up to level
            out = F.interpolate(self.up[level](out), size=levels[level].shape[-2:], mode="bilinear",
                                align_corners=True)
            if level == 0:
                out = out + trunk
            else:
                out = out + levels[level] + self.skips[level - 1](levels[level])
        return torch.sigmoid(self.head(out))


class AttentionModule(nn.Module):
    """``p`` units, then trunk and mask side by side, merged as ``(1 + M) * T`` (or ``M * T``), then ``p`` units."""

    def __init__(self, pre: list[nn.Module], trunk: list[nn.Module], mask: SoftMaskBranch, post: list[nn.Module],
                 attention_residual: bool = True) -> None:
        super().__init__()
        self.pre = nn.Sequential(*pre)
        self.trunk = nn.Sequential(*trunk)
        self.mask = mask
        self.post = nn.Sequential(*post)
        self.attention_residual = attention_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pre(x)
        trunk = self.trunk(x)
        mask = self.mask(x, trunk)
        out = (1 + mask) * trunk if self.attention_residual else mask * trunk
        return self.post(out)


def _per_stage(value: int | Sequence[int], name: str, count: int) -> list[int]:
    values = [int(value)] * count if isinstance(value, int) else [int(v) for v in value]
    if len(values) != count or any(v < 0 for v in values):
        raise ValueError(f"{name}={value!r} is not valid; give one non-negative integer or {count} of them")
    return values


class ResidualAttentionNet(Backbone):
    """Residual Attention Network: stages of one transition unit plus ``modules_per_stage[i]`` attention modules.

    ``mask_depth`` is the number of down-sampling steps of each stage's mask (default ``3, 2, 1``
    on ImageNet so the coarsest mask level is 7x7 at 224 input; ``2, 1, 1`` on CIFAR).
    ``pre_units``, ``trunk_units`` and ``mask_units`` are the paper's ``p, t, r`` (1, 2, 1);
    ``final_units`` the units after the last attention stage (3). ``widths`` are the stage output
    channels (default 256..2048 for bottleneck units on ImageNet, 64, 128, 256 on CIFAR).
    """

    def __init__(self, modules_per_stage: Sequence[int] = (1, 1, 1), layout: str = "imagenet", *,
                 in_channels: int = 3, block: str = "preact_bottleneck", widths: Sequence[int] | None = None,
                 stem_channels: int | None = None, mask_depth: int | Sequence[int] | None = None,
                 pre_units: int = 1, trunk_units: int = 2, mask_units: int = 1, final_units: int = 3,
                 attention_residual: bool = True, width: float = 1.0, shortcut: str = "identity",
                 norm: str = "batch", drop_path: float = 0.0, zero_init_last: bool = True) -> None:
        super().__init__(in_channels)
        if layout not in LAYOUTS:
            raise ValueError(f"layout={layout!r} is not valid; choose one of: {', '.join(LAYOUTS)}")
        cls = block_class(block)
        imagenet = layout == "imagenet"
        modules = _per_stage(modules_per_stage, "modules_per_stage", 3)
        depths = _per_stage(mask_depth if mask_depth is not None else ((3, 2, 1) if imagenet else (2, 1, 1)),
                            "mask_depth", 3)
        p, t, r, final = pre_units, trunk_units, mask_units, final_units
        for name, value, least in (("pre_units", p, 0), ("trunk_units", t, 1), ("mask_units", r, 1),
                                   ("final_units", final, 1 if imagenet else 0)):
            if value < least:
                raise ValueError(f"{name}={value} is not valid for layout={layout}; give at least {least}")
        if widths is None:
            widths = (256, 512, 1024, 2048) if imagenet else (64, 128, 256)
            if cls.expansion == 1:
                widths = tuple(w // 4 for w in widths)
        stages = 4 if imagenet else 3
        if len(widths) != stages:
            raise ValueError(f"widths={tuple(widths)} is not valid for layout={layout}; give {stages} stage widths")
        widths = [max(1, int(w * width)) for w in widths]
        stem = stem_channels if stem_channels is not None else (64 if imagenet else 16)
        preact = block.startswith("preact")
        self.preact = preact
        self.default_input_size = (224, 224) if imagenet else (32, 32)  # what `backbones.describe` probes

        # Trunk units get the network's stochastic-depth ramp; mask units keep their branch (drop_path 0).
        trunk_count = sum(1 + m * (2 * p + t) for m in modules) + (final if not imagenet else final - 1)
        trunk_count += 1 if imagenet else 0
        ramp = iter(resolve_options(trunk_count, drop_path=drop_path, shortcut=shortcut, norm=norm,
                                    zero_init_last=zero_init_last))
        plain = BlockOptions(shortcut=shortcut, norm=norm, zero_init_last=zero_init_last)

        def unit(opts: BlockOptions, in_ch: int, out_ch: int, stride: int = 1) -> nn.Module:
            return cls(opts, in_ch, out_ch // cls.expansion, stride)

        def attention_module(channels: int, depth: int) -> AttentionModule:
            # Built in forward order, so the stochastic-depth ramp follows the trunk.
            pre = [unit(next(ramp), channels, channels) for _ in range(p)]
            trunk = [unit(next(ramp), channels, channels) for _ in range(t)]
            mask = SoftMaskBranch(lambda: unit(plain, channels, channels), channels, depth, r, norm)
            post = [unit(next(ramp), channels, channels) for _ in range(p)]
            return AttentionModule(pre, trunk, mask, post, attention_residual)

        bias = norm == "none"
        if imagenet:
            self.conv1 = nn.Conv2d(in_channels, stem, 7, 2, 3, bias=bias)
            self.bn1 = make_norm(norm, stem)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            self.stem_info = FeatureInfo(stem, 2, "")
            stride = 4
        else:
            self.conv1 = nn.Conv2d(in_channels, stem, 3, 1, 1, bias=bias)
            # A pre-activation net's first unit normalises its own input.
            self.bn1 = nn.Identity() if preact else make_norm(norm, stem)
            self.stem_info = FeatureInfo(stem, 1, "")
            stride = 1
        in_ch = stem
        for i in range(3):
            s = 1 if i == 0 else 2
            stride *= s
            layers: list[nn.Module] = [unit(next(ramp), in_ch, widths[i], s)]
            layers += [attention_module(widths[i], depths[i]) for _ in range(modules[i])]
            if not imagenet and i == 2:
                layers += [unit(next(ramp), widths[i], widths[i]) for _ in range(final)]
            in_ch = widths[i]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
            self.feature_info.append(FeatureInfo(in_ch, stride, f"layer{i + 1}"))
        if imagenet:
            last = [unit(next(ramp), in_ch, widths[3], 2)] + [unit(next(ramp), widths[3], widths[3])
                                                              for _ in range(final - 1)]
            self.layer4 = nn.Sequential(*last)
            self.feature_info.append(FeatureInfo(widths[3], stride * 2, "layer4"))
            in_ch = widths[3]
        if preact:
            # Pre-activation units end without a norm: the final BN-ReLU (He et al. 2016; the paper's Caffe nets).
            self.final_norm = make_norm(norm, in_ch)
        self.imagenet = imagenet
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        init_residual_blocks(self)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """conv1 (+ bn1 + ReLU; a CIFAR pre-activation net leaves both to its first unit)."""
        x = self.bn1(self.conv1(x))
        return x if (self.preact and not self.imagenet) else torch.relu(x)

    def forward_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Stage 0 of the ImageNet layout starts with the stem's max-pool (stride 2 -> 4)."""
        if index == 0 and self.imagenet:
            x = self.maxpool(x)
        return super().forward_stage(index, x)

    def head_norm(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.final_norm(x)) if self.preact else x


# Wang et al. 2017, Table 4 (ImageNet): one, two, three attention modules per stage for Attention-56 / 92.
register("attention56", "image", modules_per_stage=(1, 1, 1), layout="imagenet")(ResidualAttentionNet)
register("attention92", "image", modules_per_stage=(1, 2, 3), layout="imagenet")(ResidualAttentionNet)
# CIFAR layout: pre-activation bottlenecks at ResNet-164's widths (64, 128, 256), the same trunk depths.
register("attention56_cifar", "image", modules_per_stage=(1, 1, 1), layout="cifar")(ResidualAttentionNet)
register("attention92_cifar", "image", modules_per_stage=(1, 2, 3), layout="cifar")(ResidualAttentionNet)
# CPU-sized net of the connectivity study: resnet20's trunk (basic blocks 16/32/64, 19 3x3 convs) with one
# soft-mask module per stage whose trunk is the stage's last two blocks (p = 0, t = 2, no extra final units).
register("attention20_cifar", "image", modules_per_stage=(1, 1, 1), layout="cifar", block="basic",
         pre_units=0, trunk_units=2, final_units=0)(ResidualAttentionNet)
