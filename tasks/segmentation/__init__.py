"""Semantic segmentation: segmentation-models-pytorch architectures on the registry's image backbones."""
