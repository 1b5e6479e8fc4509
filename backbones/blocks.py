"""Residual blocks: basic, bottleneck and their pre-activation forms, with every option.

One base class, :class:`ResidualBlock`, owns what every residual unit shares — the
shortcut (He et al. 2015, options A/B/C, or ``none`` for the plain twin), squeeze-and-
excitation, stochastic depth, residual scaling and the highway gate — so each block only
says what its residual branch ``F(x)`` computes. The merge is::

    y = shortcut(x) + a * drop_path(F(x))                 (residual)
    y = shortcut(x) * (1 - T(x)) + F(x) * T(x)             (gate="highway")
    y = F(x)                                               (shortcut="none", plain)

Attribute names follow torchvision (``conv1, bn1, ..., downsample``) so torchvision
state dicts load strictly into the default configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

SHORTCUTS = ("identity", "projection", "A", "B", "C", "none")
NORMS = ("batch", "group", "layer", "none")
ATTENTIONS = (None, "se")
GATES = (None, "highway")


def _choice(name: str, value: object, valid: tuple) -> None:
    if value not in valid:
        shown = ", ".join(repr(v) for v in valid)
        raise ValueError(f"{name}={value!r} is not valid; choose one of: {shown}")


@dataclass(frozen=True)
class BlockOptions:
    """Options shared by every residual block of a network.

    ``shortcut``: ``identity`` (= the paper's option B: identity where shapes match,
    1x1 projection where they change), ``A`` (parameter-free: subsample + zero-pad
    channels), ``B``, ``C``/``projection`` (project on every block), ``none`` (plain net).
    ``residual_scale`` multiplies ``F(x)`` (EDSR uses 0.1; the builders resolve ``"1/L"``).
    ``drop_path`` is this block's stochastic-depth rate (the builders spread a network-wide
    rate linearly over depth). ``zero_init_last`` zeroes the last norm's scale in each
    branch so every block starts as the identity (Goyal et al. 2017); the family applies it
    through :meth:`ResidualBlock.zero_init_last` after its own initialisation.
    """

    shortcut: str = "identity"
    norm: str = "batch"
    attention: str | None = None
    gate: str | None = None
    drop_path: float = 0.0
    residual_scale: float = 1.0
    zero_init_last: bool = True
    groups: int = 1
    width_per_group: int = 64

    def __post_init__(self) -> None:
        _choice("shortcut", self.shortcut, SHORTCUTS)
        _choice("norm", self.norm, NORMS)
        _choice("attention", self.attention, ATTENTIONS)
        _choice("gate", self.gate, GATES)
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"drop_path={self.drop_path!r} is not valid; give a rate in [0, 1)")
        if self.groups < 1 or self.width_per_group < 1:
            raise ValueError(
                f"groups={self.groups}, width_per_group={self.width_per_group} are not valid; "
                "give positive integers"
            )
        if self.gate and self.shortcut == "none":
            raise ValueError("gate='highway' needs a shortcut to carry; drop shortcut='none'")

    @property
    def residual(self) -> bool:
        return self.shortcut != "none"


def resolve_options(num_blocks: int, drop_path: float = 0.0, residual_scale: float | str = 1.0,
                    **options: object) -> list[BlockOptions]:
    """Per-block options for a network of ``num_blocks`` residual blocks.

    Stochastic depth grows linearly from 0 at the first block to ``drop_path`` at the last
    (Huang et al. 2016); ``residual_scale="1/L"`` becomes ``1 / num_blocks``.
    """
    if isinstance(residual_scale, str):
        if residual_scale.replace(" ", "") != "1/L":
            raise ValueError(
                f"residual_scale={residual_scale!r} is not valid; give a number or '1/L'"
            )
        residual_scale = 1.0 / num_blocks
    base = BlockOptions(drop_path=0.0, residual_scale=float(residual_scale), **options)  # type: ignore[arg-type]
    if not 0.0 <= drop_path < 1.0:
        raise ValueError(f"drop_path={drop_path!r} is not valid; give a rate in [0, 1)")
    rates = [drop_path * i / (num_blocks - 1) for i in range(num_blocks)] if num_blocks > 1 else [drop_path]
    return [replace(base, drop_path=rate) for rate in rates]


def make_norm(kind: str, channels: int, dims: int = 2) -> nn.Module:
    """Normalisation layer by name; ``none`` is an identity (EDSR-style, no BN)."""
    if kind == "batch":
        return {0: nn.BatchNorm1d, 1: nn.BatchNorm1d, 2: nn.BatchNorm2d}[dims](channels)
    if kind == "group":
        groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
        return nn.GroupNorm(groups, channels)
    if kind == "layer":
        return nn.LayerNorm(channels) if dims == 0 else nn.GroupNorm(1, channels)
    return nn.Identity()


def conv_nd(dims: int, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1,
            bias: bool = False, **kw: object) -> nn.Module:
    """A 1x1-style projection for the block's dimensionality (0 = a linear layer)."""
    if dims == 0:
        return nn.Linear(in_ch, out_ch, bias=bias)
    conv = nn.Conv1d if dims == 1 else nn.Conv2d
    return conv(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=bias, **kw)


class ZeroPadShortcut(nn.Module):
    """Option A of He et al. 2015: subsample spatially, pad the new channels with zeros."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        if out_ch < in_ch:
            raise ValueError(f"shortcut='A' cannot shrink channels ({in_ch} -> {out_ch}); use 'B'")
        self.extra, self.stride = out_ch - in_ch, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            index = (slice(None), slice(None)) + (slice(None, None, self.stride),) * (x.dim() - 2)
            x = x[index]
        if self.extra:
            pad = x.new_zeros((x.shape[0], self.extra, *x.shape[2:]))
            x = torch.cat([x, pad], dim=1)
        return x


def make_shortcut(opts: BlockOptions, in_ch: int, out_ch: int, stride: int,
                  dims: int = 2) -> nn.Module | None:
    """The shortcut branch: ``None`` means identity (or no shortcut for a plain block)."""
    if not opts.residual:
        return None
    changes_shape = stride != 1 or in_ch != out_ch
    if opts.shortcut == "A" and changes_shape:
        return ZeroPadShortcut(in_ch, out_ch, stride)
    if opts.shortcut in ("C", "projection") or (opts.shortcut in ("identity", "B") and changes_shape):
        return nn.Sequential(conv_nd(dims, in_ch, out_ch, 1, stride), make_norm(opts.norm, out_ch, dims))
    return None


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample while training."""

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.rate == 0.0:
            return x
        keep = 1.0 - self.rate
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"rate={self.rate:.3f}"


class SqueezeExcite(nn.Module):
    """Channel attention (Hu et al. 2018): global pool, bottleneck MLP, sigmoid gate."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(8, channels // reduction)
        self.fc1 = nn.Conv2d(channels, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dims = tuple(range(2, x.dim()))
        s = x.mean(dims, keepdim=True)
        shape = s.shape
        s = s.reshape(s.shape[0], s.shape[1], 1, 1)
        s = self.fc2(torch.relu(self.fc1(s))).reshape(shape)
        return x * torch.sigmoid(s)


class ResidualBlock(nn.Module):
    """Base for every residual unit: subclasses define ``branch(x)``; this merges it."""

    #: whether the block applies a ReLU after the merge (post-activation, original ResNet)
    post_activation = True

    def __init__(self, opts: BlockOptions, in_ch: int, out_ch: int, stride: int, dims: int = 2) -> None:
        super().__init__()
        self.opts = opts
        self.downsample = make_shortcut(opts, in_ch, out_ch, stride, dims)
        self.se = SqueezeExcite(out_ch) if opts.attention == "se" else None
        self.drop_path = DropPath(opts.drop_path) if opts.drop_path > 0 else None
        self.gate = None
        if opts.gate == "highway":
            self.gate = conv_nd(dims, in_ch, out_ch, 1, stride, bias=True)
            self.init_gate()

    def init_gate(self) -> None:
        """Start the highway gate closed: zero weight, bias -2, so the block mostly carries its input.

        Srivastava et al. 2015. Families call it again after a network-wide init (which
        would otherwise give the gate conv a He-normal weight).
        """
        if self.gate is not None:
            nn.init.zeros_(self.gate.weight)
            nn.init.constant_(self.gate.bias, -2.0)

    def zero_init_last(self) -> None:
        """Zero the branch's last scale so ``F(x) = 0`` and the block starts as its shortcut.

        Goyal et al. 2017 (timm's ``zero_init_last``). Each block type names its last layer;
        the family calls this after initialising every layer, when ``opts.zero_init_last`` is on.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define zero_init_last()")

    def branch(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def shortcut_input(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def merge(self, x: torch.Tensor, fx: torch.Tensor) -> torch.Tensor:
        if self.se is not None:
            fx = self.se(fx)
        if not self.opts.residual:
            return fx
        sc = self.shortcut_input(x)
        identity = sc if self.downsample is None else self.downsample(sc)
        if self.drop_path is not None:
            fx = self.drop_path(fx)
        if self.gate is not None:
            t = torch.sigmoid(self.gate(x))
            return identity * (1 - t) + fx * t
        if self.opts.residual_scale != 1.0:
            fx = fx * self.opts.residual_scale
        # In place, as torchvision: no layer that produces a branch output needs it for backward.
        return fx.add_(identity)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.merge(x, self.branch(x))
        # In place is safe: neither the add nor a norm needs its output for the backward pass.
        return torch.relu_(out) if self.post_activation else out


class BasicBlock(ResidualBlock):
    """Two 3x3 convolutions (He et al. 2015, Fig. 2 left); ``expansion = 1``."""

    expansion = 1

    def __init__(self, opts: BlockOptions, in_ch: int, planes: int, stride: int = 1) -> None:
        out_ch = planes * self.expansion
        super().__init__(opts, in_ch, out_ch, stride)
        if opts.groups != 1 or opts.width_per_group != 64:
            raise ValueError("groups/width_per_group need bottleneck blocks; use a resnext/wide family")
        bias = opts.norm == "none"
        self.conv1 = nn.Conv2d(in_ch, planes, 3, stride, 1, bias=bias)
        self.bn1 = make_norm(opts.norm, planes)
        self.conv2 = nn.Conv2d(planes, out_ch, 3, 1, 1, bias=bias)
        self.bn2 = make_norm(opts.norm, out_ch)

    def zero_init_last(self) -> None:
        zero_last_scale(self.bn2, self.conv2)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu_(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out))


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3 (grouped, strided: torchvision's "ResNet v1.5"), 1x1 expand."""

    expansion = 4

    def __init__(self, opts: BlockOptions, in_ch: int, planes: int, stride: int = 1) -> None:
        out_ch = planes * self.expansion
        super().__init__(opts, in_ch, out_ch, stride)
        width = int(planes * (opts.width_per_group / 64.0)) * opts.groups
        bias = opts.norm == "none"
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=bias)
        self.bn1 = make_norm(opts.norm, width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=opts.groups, bias=bias)
        self.bn2 = make_norm(opts.norm, width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=bias)
        self.bn3 = make_norm(opts.norm, out_ch)

    def zero_init_last(self) -> None:
        zero_last_scale(self.bn3, self.conv3)

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu_(self.bn1(self.conv1(x)))
        out = torch.relu_(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))


class PreActBasicBlock(BasicBlock):
    """Pre-activation basic block (He et al. 2016): BN-ReLU-conv twice, nothing after the add.

    The shortcut of a shape-changing block sees the pre-activated input, as in the paper.
    """

    post_activation = False

    def __init__(self, opts: BlockOptions, in_ch: int, planes: int, stride: int = 1) -> None:
        super().__init__(opts, in_ch, planes, stride)
        self.bn1 = make_norm(opts.norm, in_ch)
        self.bn2 = make_norm(opts.norm, planes)

    def zero_init_last(self) -> None:
        # The branch ends in a conv, not a norm.
        zero_layer(self.conv2)

    def shortcut_input(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn1(x)) if self.downsample is not None else x

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(torch.relu(self.bn1(x)))
        return self.conv2(torch.relu(self.bn2(out)))


class PreActBottleneck(Bottleneck):
    """Pre-activation bottleneck (He et al. 2016): BN-ReLU before each of the three convs."""

    post_activation = False

    def __init__(self, opts: BlockOptions, in_ch: int, planes: int, stride: int = 1) -> None:
        super().__init__(opts, in_ch, planes, stride)
        width = self.conv1.out_channels
        self.bn1 = make_norm(opts.norm, in_ch)
        self.bn2 = make_norm(opts.norm, width)
        self.bn3 = make_norm(opts.norm, width)

    def zero_init_last(self) -> None:
        # The branch ends in a conv, not a norm.
        zero_layer(self.conv3)

    def shortcut_input(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn1(x)) if self.downsample is not None else x

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(torch.relu(self.bn1(x)))
        out = self.conv2(torch.relu(self.bn2(out)))
        return self.conv3(torch.relu(self.bn3(out)))


def zero_layer(module: nn.Module) -> None:
    """Zero a layer's weight (and bias)."""
    nn.init.zeros_(module.weight)
    if getattr(module, "bias", None) is not None:
        nn.init.zeros_(module.bias)


def zero_last_scale(norm: nn.Module, layer: nn.Module) -> None:
    """Start the branch at zero: zero the last norm's scale, or the layer before it when there is no norm."""
    if getattr(norm, "weight", None) is not None:
        nn.init.zeros_(norm.weight)
    else:
        zero_layer(layer)


def init_residual_blocks(model: nn.Module) -> None:
    """Apply the blocks' own starting points after a family has initialised every layer.

    timm's order: the family's init loop covers everything, then each block resets what it
    starts from on purpose (the highway gate's carry bias, and, where its options say so,
    a zeroed last layer via ``zero_init_last()``). Plain blocks keep their branch: zeroing
    it would zero the whole block.
    """
    for m in model.modules():
        if isinstance(m, ResidualBlock):
            m.init_gate()
            if m.opts.zero_init_last and m.opts.residual:
                m.zero_init_last()


BLOCKS: dict[str, type[ResidualBlock]] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "preact_basic": PreActBasicBlock,
    "preact_bottleneck": PreActBottleneck,
}


def block_class(name: str) -> type[ResidualBlock]:
    """Look a block type up by name, with a one-line error listing the valid ones."""
    _choice("block", name, tuple(BLOCKS))
    return BLOCKS[name]
