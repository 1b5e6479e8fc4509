"""Thin adapters from our backbones to other libraries' model builders."""

from .classifier import Classifier
from .fpn import FPNBackbone, fpn

__all__ = ["Classifier", "FPNBackbone", "fpn", "register_smp_encoders"]


def register_smp_encoders(prefix: str = "rs-") -> list[str]:
    """Register our ImageNet-style backbones as segmentation-models-pytorch encoders.

    Imported lazily so that ``import backbones`` does not need SMP installed.
    """
    from .smp import register_smp_encoders as _register

    return _register(prefix)
