"""Our backbones as torchvision detection backbones, through torchvision's own FPN."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock, FeaturePyramidNetwork, LastLevelMaxPool


class FPNBackbone(nn.Module):
    """Backbone stages -> ``FeaturePyramidNetwork``; has ``out_channels`` as torchvision expects."""

    def __init__(self, backbone: nn.Module, out_channels: int = 256,
                 returned_stages: Sequence[int] | None = None,
                 extra_blocks: ExtraFPNBlock | None = None) -> None:
        super().__init__()
        if getattr(backbone, "modality", None) != "image":
            raise ValueError(f"{type(backbone).__name__} is not an image backbone; an FPN needs one")
        n = len(backbone.feature_info)
        stages = list(returned_stages) if returned_stages is not None else list(range(max(0, n - 3), n))
        if not stages or any(not 0 <= s < n for s in stages):
            raise ValueError(f"returned_stages={stages} is not valid; choose indices in 0..{n - 1}")
        self.body = backbone
        self.returned_stages = stages
        self.fpn = FeaturePyramidNetwork(
            [backbone.feature_info[s].channels for s in stages], out_channels,
            extra_blocks=extra_blocks if extra_blocks is not None else LastLevelMaxPool(),
        )
        self.out_channels = out_channels

    @property
    def strides(self) -> list[int]:
        return [self.body.feature_info[s].stride for s in self.returned_stages]

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        feats = self.body(x)
        return self.fpn(OrderedDict((str(s), feats[s]) for s in self.returned_stages))


def fpn(backbone: nn.Module, out_channels: int = 256, returned_stages: Sequence[int] | None = None,
        extra_blocks: ExtraFPNBlock | None = None) -> FPNBackbone:
    """Wrap ``backbone`` for ``torchvision.models.detection.FasterRCNN`` / ``RetinaNet``.

    By default the last three stages feed the pyramid plus a max-pooled extra level, i.e.
    four feature maps; give the detector one anchor size per map.
    """
    return FPNBackbone(backbone, out_channels, returned_stages, extra_blocks)
