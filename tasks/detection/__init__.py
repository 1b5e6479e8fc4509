"""Object detection: torchvision detectors on the registry's image backbones."""
