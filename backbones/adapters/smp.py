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
    """SMP encoder contract: ``forward`` returns ``depth + 1`` maps, the input first.

    Built on the backbone contract alone: the input, the stem output (``stem_info``,
    stride 2) and the stage outputs (strides 4..32) from ``forward_intermediates``, so any
    backbone with that stride ladder fits, whatever its layers are called.
    """

    def __init__(self, backbone_name: str, depth: int = 5, output_stride: int = 32, **options: object) -> None:
        super().__init__()
        EncoderMixin.__init__(self)
        if not 1 <= depth <= 5:
            raise ValueError(f"encoder_depth={depth} is not valid; choose 1..5")
        self._backbone_name = backbone_name
        self._options = dict(options)
        self.model = create(backbone_name, **options)
        m = self.model
        strides = [m.stem_info.stride] + [f.stride for f in m.feature_info]
        if strides[: depth] != [2 ** i for i in range(1, depth + 1)]:
            raise ValueError(f"{backbone_name} has level strides {strides}; an SMP encoder of depth {depth} "
                             f"needs {[2 ** i for i in range(1, depth + 1)]}")
        self._in_channels = m.in_channels
        self._out_channels = [m.in_channels, m.stem_info.channels] + [f.channels for f in m.feature_info]
        self._depth = depth
        self._output_stride = output_stride

    def set_in_channels(self, in_channels: int, pretrained: bool = True) -> None:
        """Rebuild the backbone for ``in_channels`` input channels.

        SMP's default patches the first conv in place, which would leave the backbone's
        input check at 3 channels; no pretrained weights are offered, so a fresh backbone
        (with the family's own init) is exact.
        """
        if in_channels == self.model.in_channels:
            return
        self._options["in_channels"] = in_channels
        self.model = create(self._backbone_name, **self._options)
        self._in_channels = in_channels
        self._out_channels = [in_channels] + self._out_channels[1:]

    def get_stages(self) -> dict[int, list[nn.Module]]:
        """Stages SMP may dilate for ``output_stride`` 16 or 8, keyed by their stride."""
        return {f.stride: [getattr(self.model, f.module)] for f in self.model.feature_info if f.stride in (16, 32)}

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        # Levels 2..depth are the first depth - 1 stages; deeper stages are not run.
        stem, stages = self.model.forward_intermediates(x, num_stages=self._depth - 1)
        return [x, stem, *stages]


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


def encoder_name(backbone: str, prefix: str = "rs-", **options: object) -> str:
    """The SMP encoder name of ``backbone`` built with ``options`` (e.g. ``shortcut="none"``).

    SMP builds an encoder from its table entry alone (extra keyword arguments of its models
    do not reach non-timm encoders), so a backbone with options gets its own entry,
    ``rs-resnet34[shortcut=none]``, registered on first use; without options it is the plain
    ``rs-resnet34``. The options are checked by ``backbones.create`` when SMP builds it.
    """
    if backbone not in names("image"):
        raise ValueError(f"{backbone!r} is not an image backbone of the registry; choose one of: "
                         f"{', '.join(names('image'))}")
    suffix = ",".join(f"{k}={options[k]}" for k in sorted(options))
    name = f"{prefix}{backbone}" + (f"[{suffix}]" if suffix else "")
    if name not in smp_encoders:
        smp_encoders[name] = {"encoder": ResidualEncoder, "pretrained_settings": {},
                              "params": {"backbone_name": backbone, **options}}
    return name
