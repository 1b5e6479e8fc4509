"""residual-suite backbones: one library of residual networks for every domain.

>>> import backbones, torch
>>> m = backbones.create("resnet56", shortcut="none")      # the plain twin
>>> feats = m(torch.randn(2, 3, 32, 32))                   # stage outputs, shallow to deep
>>> [(f.channels, f.stride) for f in m.feature_info]
[(16, 1), (32, 2), (64, 4)]
"""

from . import adapters, attention, densenet, diagnostics, fractal, ode, zoo  # noqa: F401  (these register the families)
from .base import Backbone, FeatureInfo, Intermediates
from .blocks import BlockOptions
from .describe import describe
from .registry import create, entry, names, register
from .weights import LoadReport, adapt_input_conv, load_backbone_weights, load_torchvision_weights

__all__ = [
    "Backbone", "BlockOptions", "FeatureInfo", "Intermediates", "LoadReport", "adapt_input_conv", "adapters", "create",
    "describe", "diagnostics", "entry", "load_backbone_weights", "load_torchvision_weights", "names", "register",
]
