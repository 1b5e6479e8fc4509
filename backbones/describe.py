"""Parameter count and multiply-adds of a backbone for a given input size."""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from .base import MODALITY_RANK
from .registry import create, entry

#: default probe input per modality (without the batch and channel dims)
DEFAULT_SIZE = {"image": (224, 224), "sequence": (1600,), "vector": ()}


def describe(name: str, input_size: tuple[int, ...] | None = None, **overrides: Any) -> dict[str, Any]:
    """``{"name", "modality", "params", "macs", "input", "num_features", "strides"}``.

    Multiply-adds are half of the FLOPs counted by ``torch.utils.flop_counter`` for one
    sample of ``input_size`` (default: the family's usual input, e.g. 224x224 for ImageNet
    nets, 32x32 for CIFAR nets, 16 s of 100 Hz frames for audio), traced on the meta device.
    """
    e = entry(name)
    with torch.device("meta"):  # shapes only: no memory, no compute
        model = create(name, **overrides).eval()
    default = getattr(model, "default_input_size", DEFAULT_SIZE[e.modality])
    size = tuple(input_size) if input_size is not None else default
    x = torch.zeros(1, model.in_channels, *size, device="meta")
    if x.dim() != MODALITY_RANK[e.modality]:
        raise ValueError(f"input_size={size} does not fit a {e.modality} backbone")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return {
        "name": name,
        "modality": e.modality,
        "params": sum(p.numel() for p in model.parameters()),
        "macs": counter.get_total_flops() // 2,
        "input": (model.in_channels, *size),
        "num_features": model.num_features,
        "strides": [f.stride for f in model.feature_info],
    }
