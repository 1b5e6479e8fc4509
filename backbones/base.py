"""The feature contract every backbone honours (as timm's ``feature_info``, detectron2's ``ShapeSpec``).

A backbone maps an input of its modality to a list of stage outputs, shallow to deep.
``feature_info[i]`` says what the i-th output looks like: its channel count and its stride
(how many input pixels / frames one output step covers). Heads, FPNs and encoders are built
from this description alone, so any backbone fits any task of its modality.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

#: Input rank expected per modality: image (N,C,H,W), sequence (N,C,T), vector (N,D).
MODALITY_RANK = {"image": 4, "sequence": 3, "vector": 2}


@dataclass(frozen=True)
class FeatureInfo:
    """Shape of one stage output: ``channels`` and ``stride`` relative to the input."""

    channels: int
    stride: int
    module: str = ""


class Backbone(nn.Module):
    """Base class: subclasses build ``stem`` and ``stages`` and fill ``feature_info``.

    ``forward`` checks the input once (rank and channels give a one-line ``ValueError``
    instead of a shape error deep inside a convolution), runs the stem and returns every
    stage's output. Subclasses whose last stage needs a final norm (pre-activation nets)
    override ``head_norm``.
    """

    modality: str = "image"

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels={in_channels!r} is not valid; give a positive integer")
        self.in_channels = in_channels
        self.feature_info: list[FeatureInfo] = []

    @property
    def num_features(self) -> int:
        """Channels of the last stage (what a classifier head takes)."""
        return self.feature_info[-1].channels

    def stage_names(self) -> list[str]:
        return [info.module for info in self.feature_info]

    def check_input(self, x: torch.Tensor) -> None:
        rank = MODALITY_RANK[self.modality]
        if x.dim() != rank:
            raise ValueError(
                f"{type(self).__name__} expects a {rank}-D {self.modality} input, got shape "
                f"{tuple(x.shape)}; reshape the batch to the modality's layout"
            )
        if x.shape[1] != self.in_channels:
            raise ValueError(
                f"{type(self).__name__} was built with in_channels={self.in_channels} but the "
                f"input has {x.shape[1]}; pass in_channels={x.shape[1]} to backbones.create"
            )

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x)

    def head_norm(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.check_input(x)
        x = self.forward_stem(x)
        outputs = []
        names = self.stage_names()
        for i, name in enumerate(names):
            x = getattr(self, name)(x)
            outputs.append(self.head_norm(x) if i == len(names) - 1 else x)
        return outputs
