"""The feature contract every backbone honours (as timm's ``feature_info``, detectron2's ``ShapeSpec``).

A backbone maps an input of its modality to a list of stage outputs, shallow to deep.
``feature_info[i]`` says what the i-th output looks like: its channel count and its stride
(how many input pixels / frames one output step covers). Heads, FPNs and encoders are built
from this description alone, so any backbone fits any task of its modality.

The contract, in full (checked for every registered name by ``tests/backbones/test_contract.py``):

``stem_info: FeatureInfo``
    Channels and stride of the stem output, the level before the first stage. U-Net style
    decoders (SMP) need it: for an ImageNet ResNet it is the stride-2 map *before* the
    max-pool, so the pool is the first step of stage 0, not part of the stem.
``feature_info: list[FeatureInfo]``
    One entry per stage output, shallow to deep; ``module`` names the attribute that holds
    the stage's layers (what freezing and dilation act on).
``forward_intermediates(x, num_stages=None) -> Intermediates``
    The stem output and every stage output (the first ``num_stages`` only, if given).
    ``forward(x)`` is ``forward_intermediates(x).stages``: one code path, so both agree.
``output_lengths(lengths) -> Tensor``
    Output steps of the last stage for ``lengths`` input steps: ``ceil(lengths / stride)``,
    which every family's "same" padding yields (what ``CTCLoss`` needs as input lengths).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

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


class Intermediates(NamedTuple):
    """What :meth:`Backbone.forward_intermediates` returns: the stem output, then each stage's."""

    stem: torch.Tensor
    stages: list[torch.Tensor]


class Backbone(nn.Module):
    """Base class: subclasses build the stem and the stages and fill ``stem_info``/``feature_info``.

    ``forward_intermediates`` checks the input once (rank and channels give a one-line
    ``ValueError`` instead of a shape error deep inside a convolution), runs
    ``forward_stem`` and then ``forward_stage(i, x)`` for each stage. Subclasses override:

    * ``forward_stem`` when the stem is not a ``self.stem`` module (torchvision-named layers);
    * ``forward_stage`` when a stage does more than call its ``feature_info[i].module``
      (ImageNet ResNet max-pools before stage 0, EDSR adds its long skip);
    * ``head_norm`` when the last stage needs a final norm (pre-activation nets).
    """

    modality: str = "image"

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels={in_channels!r} is not valid; give a positive integer")
        self.in_channels = in_channels
        self.feature_info: list[FeatureInfo] = []
        # Families overwrite this; the default describes an identity stem.
        self.stem_info = FeatureInfo(in_channels, 1, "")

    @property
    def num_features(self) -> int:
        """Channels of the last stage (what a classifier head takes)."""
        return self.feature_info[-1].channels

    def stage_names(self) -> list[str]:
        """Attribute names of the stages, shallow to deep."""
        return [info.module for info in self.feature_info]

    def check_input(self, x: torch.Tensor) -> None:
        """Fail with a one-line ``ValueError`` if ``x`` has the wrong rank or channel count."""
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
        """The stem: input -> the map described by ``stem_info``."""
        return self.stem(x)

    def forward_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Stage ``index`` (0-based): the previous level's output -> ``feature_info[index]``'s map."""
        return getattr(self, self.feature_info[index].module)(x)

    def head_norm(self, x: torch.Tensor) -> torch.Tensor:
        """Applied to the last stage's output only (identity unless a family needs a final norm)."""
        return x

    def forward_intermediates(self, x: torch.Tensor, num_stages: int | None = None) -> Intermediates:
        """The stem output and the outputs of the first ``num_stages`` stages (all by default).

        Stopping early saves the deep stages' compute when a consumer (an SMP encoder of
        small depth) needs only the shallow levels; ``head_norm`` belongs to the last stage,
        so it is applied only when that stage runs.
        """
        total = len(self.feature_info)
        count = total if num_stages is None else num_stages
        if not 0 <= count <= total:
            raise ValueError(f"num_stages={num_stages!r} is not valid; choose 0..{total}")
        self.check_input(x)
        stem = self.forward_stem(x)
        stages: list[torch.Tensor] = []
        out = stem
        for i in range(count):
            out = self.forward_stage(i, out)
            stages.append(self.head_norm(out) if i == total - 1 else out)
        return Intermediates(stem, stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Every stage's output, shallow to deep (``feature_info`` describes each)."""
        return self.forward_intermediates(x).stages

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Steps out of the last stage for ``lengths`` steps in, ``ceil(lengths / stride)``.

        Every family pads its convolutions "same" (odd kernels, ``pad = dilation * (k - 1) // 2``),
        so a strided layer maps ``T`` steps to ``ceil(T / s)``, and nested ceilings compose
        into one ceiling over the total stride. For a sequence backbone these are the
        per-utterance input lengths ``CTCLoss`` needs.
        """
        stride = self.feature_info[-1].stride
        return torch.div(lengths + (stride - 1), stride, rounding_mode="floor")
