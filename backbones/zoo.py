"""The registered names: every family, built from the same blocks.

Registration binds the architecture-defining arguments (block type, depths, groups);
everything else stays a user option (``shortcut``, ``drop_path``, ``in_channels``, ...).
"""

from __future__ import annotations

from .impala import ImpalaCNN
from .registry import register
from .resnet import CifarResNet, EDSRBody, ImageNetResNet
from .sequence import QuartzNet
from .vector import ResMLP

# ImageNet-style (He et al. 2015, Table 1; ResNeXt: Xie et al. 2017; WRN: Zagoruyko 2016).
_IMAGENET = {
    "resnet18": ("basic", (2, 2, 2, 2), {}),
    "resnet34": ("basic", (3, 4, 6, 3), {}),
    "resnet50": ("bottleneck", (3, 4, 6, 3), {}),
    "resnet101": ("bottleneck", (3, 4, 23, 3), {}),
    "resnet152": ("bottleneck", (3, 8, 36, 3), {}),
    "resnext50_32x4d": ("bottleneck", (3, 4, 6, 3), {"groups": 32, "width_per_group": 4}),
    "resnext101_32x8d": ("bottleneck", (3, 4, 23, 3), {"groups": 32, "width_per_group": 8}),
    "wide_resnet50_2": ("bottleneck", (3, 4, 6, 3), {"width_per_group": 128}),
    "preact_resnet18": ("preact_basic", (2, 2, 2, 2), {}),
    "preact_resnet34": ("preact_basic", (3, 4, 6, 3), {}),
    "preact_resnet50": ("preact_bottleneck", (3, 4, 6, 3), {}),
    "se_resnet18": ("basic", (2, 2, 2, 2), {"attention": "se"}),
    "se_resnet50": ("bottleneck", (3, 4, 6, 3), {"attention": "se"}),
}
for _name, (_block, _layers, _fixed) in _IMAGENET.items():
    register(_name, "image", block=_block, layers=_layers, **_fixed)(ImageNetResNet)

# CIFAR-style (He et al. 2015, Sec. 4.2; pre-activation: He et al. 2016) and plain twins.
for _depth in (20, 32, 44, 56, 110, 1202):
    register(f"resnet{_depth}", "image", block="basic", depth=_depth)(CifarResNet)
for _depth in (20, 32, 44, 56, 110):
    register(f"plain{_depth}", "image", block="basic", depth=_depth, shortcut="none")(CifarResNet)
register("preact_resnet110", "image", block="preact_basic", depth=110)(CifarResNet)
register("preact_resnet164", "image", block="preact_bottleneck", depth=164)(CifarResNet)
register("wide_resnet28_10", "image", block="preact_basic", blocks_per_stage=4, width=10)(CifarResNet)
register("wide_resnet16_4", "image", block="preact_basic", blocks_per_stage=2, width=4)(CifarResNet)

# Super-resolution bodies (Lim et al. 2017): EDSR-baseline and EDSR, no batch norm.
register("edsr_baseline", "image", num_blocks=16, channels=64)(EDSRBody)
register("edsr", "image", num_blocks=32, channels=256)(EDSRBody)
register("edsr_tiny", "image", num_blocks=8, channels=32)(EDSRBody)  # CPU-sized (demo, tests)

# Sequence (Kriman et al. 2020). quartznet_small is a ~0.4M-parameter CPU-sized variant.
register("quartznet5x5", "sequence")(QuartzNet)
register("quartznet10x5", "sequence", block_repeat=2)(QuartzNet)
register("quartznet15x5", "sequence", block_repeat=3)(QuartzNet)
register("quartznet_small", "sequence", channels=(128, 128, 192, 192, 256),
         kernels=(11, 13, 15, 17, 19), repeat=3, prolog=(128, 11), epilog=(256, 21))(QuartzNet)

# Vector and pixel-RL families.
register("resmlp", "vector")(ResMLP)
register("impala_cnn", "image")(ImpalaCNN)
