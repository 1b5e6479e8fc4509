"""Our ImageNet-style backbones as segmentation-models-pytorch encoders.

After ``register_smp_encoders()``, ``smp.Unet(encoder_name="rs-resnet34", encoder_weights=None)``
builds a U-Net on our ``resnet34`` (any SMP architecture works the same way). No weights
are offered: SMP's pretrained settings would download, which this suite never does.
"""

from __future__ import annotations

import torch
from segmentation_models_pytorch.encoders import encoders as smp_encoders
from segmentation_models_pytorch.encoders._base import EncoderMixin
from torch import nn

from ..registry import create, entry, names
from ..resnet import ImageNetResNet


class ResidualEncoder(nn.Module, EncoderMixin):
    """SMP encoder contract: ``forward`` returns ``depth + 1`` maps, the input first."""

    def __init__(self, backbone_name: str, depth: int = 5, output_stride: int = 32, **options: object) -> None:
        super().__init__()
        EncoderMixin.__init__(self)
        if not 1 <= depth <= 5:
            raise ValueError(f"encoder_depth={depth} is not valid; choose 1..5")
        self.model = create(backbone_name, **options)
        stem = self.model.conv1.out_channels
        self._out_channels = [3, stem] + [f.channels for f in self.model.feature_info]
        self._depth = depth
        self._output_stride = output_stride

    def get_stages(self) -> dict[int, list[nn.Module]]:
        return {16: [self.model.layer3], 32: [self.model.layer4]}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        m = self.model
        features = [x]
        x = m.relu(m.bn1(m.conv1(x)))
        features.append(x)
        x = m.maxpool(x)
        for i in range(1, self._depth):
            x = getattr(m, f"layer{i}")(x)
            features.append(m.head_norm(x) if i == 4 else x)
        return features[: self._depth + 1]


def register_smp_encoders(prefix: str = "rs-") -> list[str]:
    """Add every ImageNet-style backbone to SMP's encoder table as ``prefix + name``."""
    added = []
    for name in names("image"):
        builder = entry(name).builder
        if builder is not ImageNetResNet:
            continue
        smp_encoders[prefix + name] = {
            "encoder": ResidualEncoder,
            "pretrained_settings": {},
            "params": {"backbone_name": name},
        }
        added.append(prefix + name)
    return added
