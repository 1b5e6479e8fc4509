"""ReZero residual networks for residual-suite (Bachlechner et al. 2020): ``y = x + alpha * F(x)``.

``alpha`` is one learned scalar per block, 0 at init, so every block starts as its shortcut
without zeroing any layer. The plain twins (``shortcut="none"``) are the same nets without
shortcuts (and so without ``alpha``): the residual-vs-plain comparison every task runs.
"""

import torch
from torch import nn

from backbones import register
from backbones.blocks import BLOCKS, BasicBlock, BlockOptions
from backbones.resnet import CifarResNet, ImageNetResNet


class ReZeroBlock(BasicBlock):
    """A basic block whose branch is scaled by ``alpha`` before the shortcut is added."""

    def __init__(self, opts: BlockOptions, in_ch: int, planes: int, stride: int = 1) -> None:
        super().__init__(opts, in_ch, planes, stride)
        self.alpha = nn.Parameter(torch.zeros(1)) if opts.residual else None

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        fx = super().branch(x)
        return fx if self.alpha is None else self.alpha * fx

    def zero_init_last(self) -> None:
        """Nothing to zero: ``alpha = 0`` already starts the block as its shortcut (zeroing F as well
        would leave neither ``alpha`` nor F a gradient)."""


BLOCKS["rezero_basic"] = ReZeroBlock  # families look blocks up by name
for depth in (20, 56):  # CIFAR-style (classification)
    register(f"rezero{depth}", "image", block="rezero_basic", depth=depth)(CifarResNet)
    register(f"rezero_plain{depth}", "image", block="rezero_basic", depth=depth, shortcut="none")(CifarResNet)
# ImageNet-style, strides 4..32 (detection's FPN)
register("rezero_resnet18", "image", block="rezero_basic", layers=(2, 2, 2, 2))(ImageNetResNet)
register("rezero_plain18", "image", block="rezero_basic", layers=(2, 2, 2, 2), shortcut="none")(ImageNetResNet)
