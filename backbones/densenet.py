"""DenseNet (Huang et al. 2017): every layer sees the concatenation of all earlier layers' maps.

Within a dense block, layer ``l`` receives ``[x_0, x_1, ..., x_{l-1}]`` (concatenated along
channels) and adds ``growth_rate`` new maps; a transition (BN-ReLU-1x1 conv-2x2 average pool)
compresses the channels by ``compression`` and halves the resolution between blocks. The
concatenation is the family's shortcut: earlier features reach every later layer unchanged
("more pathways for gradients, improved feature reuse").

* ``ImageNetDenseNet`` (``densenet121/161/169/201``) keeps torchvision's layer names
  (``conv0, norm0, denseblock1.denselayer1.norm1, ..., transition1.conv, norm5``) without its
  ``features.`` container, so a torchvision state dict loads strictly through
  :func:`backbones.load_torchvision_weights` (which finds the ``features.`` prefix) and the
  stages are top-level modules (``feature_info[i].module``) that freezing and SMP act on.
* ``CifarDenseNet`` (``densenet_bc_100_k12``, ``densenet_bc_190_k40``): Huang et al.'s CIFAR
  nets, a 3x3 stem and three blocks; ``depth = 6n + 4`` with bottlenecks (DenseNet-BC),
  ``3n + 4`` without (``bn_size=0``).

Stage ``i`` is dense block ``i`` (its output, before the next transition, as timm's
``feature_info``); stage ``i > 0`` starts with transition ``i``. The last stage ends in
``norm5`` + ReLU, exactly the map torchvision's classifier pools.

**Plain analog** (``dense_connectivity=False``): each layer sees only its predecessor's output,
and layer ``l`` of a block outputs ``c_0 + l * growth_rate`` maps, the width the dense block's
running concatenation has at that point. Kept equal: depth (the same layers and
transitions), every layer's output width, hence every transition and every stage output
shape, and the bottleneck width ``bn_size * growth_rate``. Not kept: parameters and FLOPs.
The plain 3x3 convs must produce the whole width instead of ``growth_rate`` new maps, so the
plain analog has more of both; ``backbones.describe`` gives the numbers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from torch import nn

from .base import Backbone, FeatureInfo
from .registry import register

#: torchvision's published DenseNet files use ``norm.1`` where the modules say ``norm1``
_LEGACY_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\."
                         r"(?:weight|bias|running_mean|running_var|num_batches_tracked))$")


class DenseLayer(nn.Module):
    """BN-ReLU-1x1 conv (``bn_size * growth_rate`` maps) - BN-ReLU-3x3 conv: torchvision's ``_DenseLayer``.

    ``bn_size=0`` drops the bottleneck (Huang et al.'s layer without "B": BN-ReLU-3x3 conv,
    held in ``norm1/relu1/conv1``). ``out_channels`` is ``growth_rate`` in a dense block and the
    running width in the plain analog. ``memory_efficient`` recomputes the concatenation and
    the bottleneck in the backward pass (``torch.utils.checkpoint``) instead of storing them.
    """

    def __init__(self, in_channels: int, growth_rate: int, bn_size: int, drop_rate: float,
                 memory_efficient: bool = False, out_channels: int | None = None) -> None:
        super().__init__()
        out = growth_rate if out_channels is None else out_channels
        self.bottleneck = bn_size > 0
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        if self.bottleneck:
            self.conv1 = nn.Conv2d(in_channels, bn_size * growth_rate, 1, bias=False)
            self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
            self.relu2 = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(bn_size * growth_rate, out, 3, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(in_channels, out, 3, padding=1, bias=False)
        self.drop_rate = float(drop_rate)
        self.memory_efficient = memory_efficient

    def _first(self, *inputs: torch.Tensor) -> torch.Tensor:
        """Concatenate the inputs and apply the first BN-ReLU-conv (the part checkpointing recomputes)."""
        return self.conv1(self.relu1(self.norm1(torch.cat(inputs, 1))))

    def forward(self, inputs: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        prev = [inputs] if isinstance(inputs, torch.Tensor) else inputs
        if self.memory_efficient and torch.is_grad_enabled() and any(t.requires_grad for t in prev):
            out = cp.checkpoint(self._first, *prev, use_reentrant=False)
        else:
            out = self._first(*prev)
        if self.bottleneck:
            out = self.conv2(self.relu2(self.norm2(out)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return out


class DenseBlock(nn.ModuleDict):
    """``num_layers`` dense layers (``denselayer1..``); returns the concatenation of input and all new maps.

    With ``dense=False`` (the plain analog) the layers form a chain and the block returns the
    last layer's output, which has the same width as the dense block's concatenation.
    """

    def __init__(self, num_layers: int, in_channels: int, growth_rate: int, bn_size: int, drop_rate: float,
                 memory_efficient: bool = False, dense: bool = True) -> None:
        super().__init__()
        self.dense = dense
        for i in range(num_layers):
            width_in = in_channels + i * growth_rate
            self[f"denselayer{i + 1}"] = DenseLayer(width_in, growth_rate, bn_size, drop_rate, memory_efficient,
                                                    None if dense else width_in + growth_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.dense:
            for layer in self.values():
                x = layer(x)
            return x
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-1x1 conv-2x2 average pool (torchvision's ``_Transition``: ``norm, relu, conv, pool``).

    ``ceil_mode`` makes odd sizes round up (``ceil(n / 2)``, the contract's "same" stride rule);
    on even sizes it is torchvision's pool exactly.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.pool = nn.AvgPool2d(2, 2, ceil_mode=True)


def _check(growth_rate: int, block_config: Sequence[int], bn_size: int, compression: float,
           drop_rate: float) -> None:
    if growth_rate < 1:
        raise ValueError(f"growth_rate={growth_rate} is not valid; give a positive number of maps per layer")
    if not block_config or any(int(n) < 1 for n in block_config):
        raise ValueError(f"block_config={tuple(block_config)} is not valid; give positive layer counts per block")
    if bn_size < 0:
        raise ValueError(f"bn_size={bn_size} is not valid; give 0 (no bottleneck) or a positive multiplier")
    if not 0.0 < compression <= 1.0:
        raise ValueError(f"compression={compression} is not valid; give a fraction in (0, 1]")
    if not 0.0 <= drop_rate < 1.0:
        raise ValueError(f"drop_rate={drop_rate} is not valid; give a rate in [0, 1)")


class _DenseNet(Backbone):
    """Shared construction: dense blocks, transitions between them, ``norm5`` at the end."""

    def _build_blocks(self, channels: int, block_config: Sequence[int], growth_rate: int, bn_size: int,
                      compression: float, drop_rate: float, memory_efficient: bool, dense: bool,
                      stride: int) -> None:
        self.dense_connectivity = dense
        for i, layers in enumerate(block_config, start=1):
            if i > 1:
                out = max(1, int(channels * compression))
                self.add_module(f"transition{i - 1}", Transition(channels, out))
                channels, stride = out, stride * 2
            self.add_module(f"denseblock{i}", DenseBlock(int(layers), channels, growth_rate, bn_size, drop_rate,
                                                         memory_efficient, dense))
            channels += int(layers) * growth_rate
            self.feature_info.append(FeatureInfo(channels, stride, f"denseblock{i}"))
        self.norm5 = nn.BatchNorm2d(channels)
        # torchvision's init: He-normal (fan-in) convs, unit-scale norms.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Transition ``index`` (between blocks ``index`` and ``index + 1``), then dense block ``index + 1``."""
        if index > 0:
            x = getattr(self, f"transition{index}")(x)
        return super().forward_stage(index, x)

    def head_norm(self, x: torch.Tensor) -> torch.Tensor:
        """``norm5`` + ReLU: the map torchvision's DenseNet pools for its classifier."""
        return F.relu(self.norm5(x))


class ImageNetDenseNet(_DenseNet):
    """ImageNet DenseNet (torchvision's ``densenet121/161/169/201``): 7x7/2 stem + 3x3/2 max-pool, four blocks.

    The stem output (``stem_info``, stride 2) is ``conv0-norm0-relu0`` before the max-pool;
    the pool is the first step of stage 0, as in the ImageNet ResNets. Stage strides 4..32.
    """

    def __init__(self, growth_rate: int = 32, block_config: Sequence[int] = (6, 12, 24, 16),
                 num_init_features: int = 64, *, in_channels: int = 3, bn_size: int = 4, compression: float = 0.5,
                 drop_rate: float = 0.0, memory_efficient: bool = False, dense_connectivity: bool = True) -> None:
        super().__init__(in_channels)
        _check(growth_rate, block_config, bn_size, compression, drop_rate)
        self.conv0 = nn.Conv2d(in_channels, num_init_features, 7, 2, 3, bias=False)
        self.norm0 = nn.BatchNorm2d(num_init_features)
        self.relu0 = nn.ReLU(inplace=True)
        self.pool0 = nn.MaxPool2d(3, 2, 1)
        self.stem_info = FeatureInfo(num_init_features, 2, "")  # spread over conv0/norm0/relu0
        self._build_blocks(num_init_features, block_config, growth_rate, bn_size, compression, drop_rate,
                           memory_efficient, dense_connectivity, 4)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        """conv0-norm0-relu0: the stride-2 map before the max-pool."""
        return self.relu0(self.norm0(self.conv0(x)))

    def forward_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        if index == 0:
            x = self.pool0(x)
        return super().forward_stage(index, x)


class CifarDenseNet(_DenseNet):
    """CIFAR DenseNet (Huang et al. 2017, Sec. 3): a 3x3 stem conv and three dense blocks (strides 1, 2, 4).

    ``depth`` counts convolutions, transitions and the classifier: ``6n + 4`` with bottleneck
    layers (``bn_size > 0``, DenseNet-BC), ``3n + 4`` without; ``block_config`` gives the layers
    per block directly instead. The stem has ``2 * growth_rate`` maps for DenseNet-BC and 16
    otherwise (``num_init_features`` overrides). Like a pre-activation net, the first dense layer
    normalises the stem output itself.
    """

    default_input_size = (32, 32)

    def __init__(self, depth: int = 100, growth_rate: int = 12, *, in_channels: int = 3, bn_size: int = 4,
                 compression: float = 0.5, drop_rate: float = 0.0, memory_efficient: bool = False,
                 dense_connectivity: bool = True, block_config: Sequence[int] | None = None,
                 num_init_features: int | None = None) -> None:
        super().__init__(in_channels)
        _check(growth_rate, block_config or (1,), bn_size, compression, drop_rate)  # before any layer is sized
        per_layer = 2 if bn_size > 0 else 1
        if block_config is None:
            if depth < 3 * per_layer + 4 or (depth - 4) % (3 * per_layer):
                kind = "6n+4 with bottlenecks" if per_layer == 2 else "3n+4 without bottlenecks (bn_size=0)"
                raise ValueError(f"depth={depth} is not valid; use {kind}, e.g. {3 * per_layer * 16 + 4}, "
                                 "or give block_config")
            block_config = (((depth - 4) // (3 * per_layer)),) * 3
        stem = num_init_features if num_init_features is not None else (2 * growth_rate if per_layer == 2 else 16)
        self.conv0 = nn.Conv2d(in_channels, stem, 3, 1, 1, bias=False)
        self.stem_info = FeatureInfo(stem, 1, "conv0")
        self._build_blocks(stem, block_config, growth_rate, bn_size, compression, drop_rate, memory_efficient,
                           dense_connectivity, 1)

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv0(x)


def remap_legacy_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's downloadable DenseNet files name ``denselayer1.norm.1.weight`` what the modules
    call ``denselayer1.norm1.weight``; torchvision renames them on load, and so does this."""
    out = {}
    for key, value in state.items():
        match = _LEGACY_KEY.match(key)
        out[match.group(1) + match.group(2) if match else key] = value
    return out


# torchvision's ImageNet nets (Huang et al. 2017, Table 1): growth rate, layers per block, stem width.
_IMAGENET = {"densenet121": (32, (6, 12, 24, 16), 64), "densenet161": (48, (6, 12, 36, 24), 96),
             "densenet169": (32, (6, 12, 32, 32), 64), "densenet201": (32, (6, 12, 48, 32), 64)}
for _name, (_k, _blocks, _stem) in _IMAGENET.items():
    register(_name, "image", growth_rate=_k, block_config=_blocks, num_init_features=_stem)(ImageNetDenseNet)

# CIFAR DenseNet-BC (Huang et al. 2017, Table 2): L = 100, k = 12 (0.8M) and L = 190, k = 40 (25.6M).
register("densenet_bc_100_k12", "image", depth=100, growth_rate=12)(CifarDenseNet)
register("densenet_bc_190_k40", "image", depth=190, growth_rate=40)(CifarDenseNet)
# CPU-sized DenseNet-BC of the connectivity study (3 x 6 layers: 19 3x3 convs on its path, as resnet20)
# and its plain analog (each layer sees only its predecessor; same depth and layer widths).
register("densenet_bc_40_k12", "image", depth=40, growth_rate=12)(CifarDenseNet)
register("plain_densenet_bc_40_k12", "image", depth=40, growth_rate=12, dense_connectivity=False)(CifarDenseNet)
