"""Our backbones as torchvision detection backbones, through torchvision's own FPN.

Which pyramid goes with which detector, for an ImageNet-style ResNet (stages 0..3 at
strides 4, 8, 16, 32) and torchvision's *default* anchor generators (5 levels each):

==============================  =========================================  ==========================
call                            pyramid levels (key: stride)               default anchors it fits
==============================  =========================================  ==========================
``fpn(b)``                      "0":4 "1":8 "2":16 "3":32 "pool":64        FasterRCNN: 32, 64, 128,
                                (all four stages + ``LastLevelMaxPool``)   256, 512 (one per level)
``fpn(b, extra_blocks="p6p7")`` "1":8 "2":16 "3":32 "p6":64 "p7":128       RetinaNet: 32, 64, 128,
                                (last three stages + ``LastLevelP6P7``)    256, 512, each x 2^0,
                                                                           2^(1/3), 2^(2/3)
==============================  =========================================  ==========================

These are torchvision's own ``fasterrcnn_resnet50_fpn`` (``returned_layers=[1, 2, 3, 4]``)
and ``retinanet_resnet50_fpn`` (``returned_layers=[2, 3, 4]``, ``LastLevelP6P7(256, 256)``)
pyramids. Map keys are stage indices, so FasterRCNN's default ``MultiScaleRoIAlign`` (maps
"0".."3") finds its maps. With other anchors, give one anchor-size tuple per level:
``len(returned_stages)`` plus 1 for "pool" or 2 for "p6p7".
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
from torch import nn
from torchvision.ops.feature_pyramid_network import (
    ExtraFPNBlock,
    FeaturePyramidNetwork,
    LastLevelMaxPool,
    LastLevelP6P7,
)

#: named extra levels: how many maps each adds on top of the returned stages
EXTRA_LEVELS = {"pool": 1, "p6p7": 2, "none": 0}

#: torchvision's default anchor generators (FasterRCNN, RetinaNet) have five sizes, one per map
DEFAULT_LEVELS = 5


def _extra_block(extra_blocks: str | ExtraFPNBlock | None, out_channels: int) -> tuple[ExtraFPNBlock | None, int]:
    """The extra-level module and the number of maps it adds (``None`` means ``"pool"``)."""
    if extra_blocks is None or extra_blocks == "pool":
        return LastLevelMaxPool(), 1
    if isinstance(extra_blocks, str):
        if extra_blocks not in EXTRA_LEVELS:
            raise ValueError(f"extra_blocks={extra_blocks!r} is not valid; choose one of: "
                             f"{', '.join(EXTRA_LEVELS)}, or pass an ExtraFPNBlock")
        if extra_blocks == "none":
            return None, 0
        # P6 from P5 (in == out channels), as torchvision's retinanet_resnet50_fpn (v1).
        return LastLevelP6P7(out_channels, out_channels), 2
    # A module given by the caller: count the levels of torchvision's known ones.
    return extra_blocks, 2 if isinstance(extra_blocks, LastLevelP6P7) else 1


class FPNBackbone(nn.Module):
    """Backbone stages -> ``FeaturePyramidNetwork``; has ``out_channels`` as torchvision expects.

    ``returned_stages`` defaults to the last ``5 - extra levels`` stages (the last four with
    ``"pool"``, the last three with ``"p6p7"``), so a four-stage backbone gives the five maps
    torchvision's default anchors expect. See the module docstring for the anchor table.
    """

    def __init__(self, backbone: nn.Module, out_channels: int = 256,
                 returned_stages: Sequence[int] | None = None,
                 extra_blocks: str | ExtraFPNBlock | None = "pool") -> None:
        super().__init__()
        if getattr(backbone, "modality", None) != "image":
            raise ValueError(f"{type(backbone).__name__} is not an image backbone; an FPN needs one")
        extra, extra_levels = _extra_block(extra_blocks, out_channels)
        n = len(backbone.feature_info)
        if returned_stages is None:
            take = max(1, DEFAULT_LEVELS - extra_levels)
            stages = list(range(max(0, n - take), n))
        else:
            stages = list(returned_stages)
        if not stages or any(not 0 <= s < n for s in stages) or stages != sorted(set(stages)):
            raise ValueError(f"returned_stages={stages} is not valid; choose increasing indices in 0..{n - 1}")
        self.body = backbone
        self.returned_stages = stages
        self.num_levels = len(stages) + extra_levels
        self.fpn = FeaturePyramidNetwork(
            [backbone.feature_info[s].channels for s in stages], out_channels, extra_blocks=extra,
        )
        self.out_channels = out_channels

    @property
    def strides(self) -> list[int]:
        """Strides of the returned stages (the extra levels continue doubling from the last)."""
        return [self.body.feature_info[s].stride for s in self.returned_stages]

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        # Run only as deep as the deepest returned stage.
        feats = self.body.forward_intermediates(x, num_stages=self.returned_stages[-1] + 1).stages
        return self.fpn(OrderedDict((str(s), feats[s]) for s in self.returned_stages))


def fpn(backbone: nn.Module, out_channels: int = 256, returned_stages: Sequence[int] | None = None,
        extra_blocks: str | ExtraFPNBlock | None = "pool") -> FPNBackbone:
    """Wrap ``backbone`` for ``torchvision.models.detection.FasterRCNN`` / ``RetinaNet``.

    ``fpn(b)`` (all four stages of an ImageNet ResNet + a max-pooled level, five maps) fits
    ``FasterRCNN``'s default anchors; ``fpn(b, extra_blocks="p6p7")`` (last three stages +
    P6, P7, five maps) fits ``RetinaNet``'s. ``extra_blocks`` is ``"pool"``, ``"p6p7"``,
    ``"none"`` or any torchvision ``ExtraFPNBlock``; ``returned_stages`` picks stages by index.
    With your own anchors, give one size tuple per map (``FPNBackbone.num_levels``).
    """
    return FPNBackbone(backbone, out_channels, returned_stages, extra_blocks)
