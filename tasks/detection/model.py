"""torchvision detectors (Faster R-CNN, RetinaNet, FCOS) on any registry image backbone.

The backbone is wrapped by ``backbones.adapters.fpn`` (torchvision's own FPN); anchors get
one size per pyramid level, doubling from ``model.anchor_size``. Nothing of the detector
itself is written here: heads, RPN, RoI pooling, losses and NMS are torchvision's.

Mixed precision covers the backbone and FPN only (:class:`MixedPrecisionFPN`): the heads,
anchors, box coding, losses and NMS run in fp32. torchvision's ``BoxCoder`` computes in the
dtype of the head's output, and in bf16 a coordinate above 512 px snaps to a 4-px grid, above
1024 px to an 8-px grid (COCO images are resized to 1333 px): proposals, final boxes and the
GIoU loss would all carry that error. Stages past the deepest one the FPN reads never run, so
they do not learn (DDP would otherwise wait for their gradients).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import FCOS, FasterRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool, LastLevelP6P7

from backbones.adapters.fpn import FPNBackbone
from tasks.core.backbone import build_backbone, freeze_unreached_stages
from tasks.core.device import autocast_dtype
from tasks.core.errors import UserError

from .config import DetectionConfig

ARCHS = ("fasterrcnn", "retinanet", "fcos")
BOX_LOSSES = ("l1", "smooth_l1", "giou", "diou", "ciou")  # RetinaNet box regression losses in torchvision


def head_norm(kind: str, channels: int) -> Callable[[int], nn.Module] | None:
    """Norm layer of the RetinaNet head: ``group`` (GroupNorm(32), torchvision's v2 head) or ``none`` (v1)."""
    if kind == "none":
        return None
    if kind != "group":
        raise UserError(f"model.head_norm={kind!r} is not valid; choose group or none")
    if channels % 32:
        raise UserError(f"model.head_norm=group needs model.fpn_channels divisible by 32 (got {channels})")
    return partial(nn.GroupNorm, 32)


class MixedPrecisionFPN(FPNBackbone):
    """torchvision's FPN over our backbone, autocast to ``precision`` on its own; fp32 NCHW maps out.

    The dtype follows ``trainer.precision`` on the input's device (bf16 on CUDA by default, fp32
    on the CPU), so training, ``rsuite evaluate`` and prediction compute the same way. The maps
    leave in fp32 and in the standard layout whatever the body ran in (channels-last, bf16), as
    the heads and RoIAlign want them. Tracing for export runs in fp32.
    """

    def __init__(self, *args: Any, precision: str = "auto", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.precision = precision
        self.channels_last = False  # set by DetectionTask.to_channels_last
        self._resolved: tuple[str, torch.dtype | None] | None = None  # (device type, dtype), see resolve()

    def resolve(self, device: torch.device) -> None:
        """Fix the autocast dtype for ``device`` now, so a compiled forward reads a constant instead of
        querying the GPU (which would break the graph)."""
        self._resolved = (device.type, autocast_dtype(self.precision, device))

    def _dtype(self, device: torch.device) -> torch.dtype | None:
        if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting():
            return None
        if self._resolved is not None and self._resolved[0] == device.type:
            return self._resolved[1]
        return autocast_dtype(self.precision, device)

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        dtype = self._dtype(x.device)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if dtype is None:
            maps = super().forward(x)
            if not self.channels_last:
                return maps
        else:
            with torch.autocast(x.device.type, dtype=dtype):
                maps = super().forward(x)
        return OrderedDict((k, v.to(torch.float32, memory_format=torch.contiguous_format)) for k, v in maps.items())


def check_settings(cfg: DetectionConfig) -> None:
    """``model.*`` choices that cannot work, found before any scene is generated."""
    m = cfg.model
    if m.arch not in ARCHS:
        raise UserError(f"model.arch={m.arch!r} is not valid; choose one of: {', '.join(ARCHS)}")
    if m.box_loss not in BOX_LOSSES:
        raise UserError(f"model.box_loss={m.box_loss!r} is not valid; choose one of: {', '.join(BOX_LOSSES)}")
    if m.arch == "retinanet":
        head_norm(m.head_norm, m.fpn_channels)


def build_model(cfg: DetectionConfig, info: dict[str, Any]) -> nn.Module:
    check_settings(cfg)
    m = cfg.model
    body = build_backbone(cfg.backbone, "image", in_channels=3)  # with backbone.frozen_bn / trainable_stages
    n = len(body.feature_info)
    stages = list(m.returned_stages) or list(range(max(0, n - 3), n))
    extra = LastLevelP6P7(m.fpn_channels, m.fpn_channels) if m.arch == "retinanet" else LastLevelMaxPool()
    fpn = MixedPrecisionFPN(body, m.fpn_channels, stages, extra, precision=cfg.trainer.precision)
    freeze_unreached_stages(body, fpn.returned_stages[-1])
    levels = len(stages) + (2 if m.arch == "retinanet" else 1)
    sizes = [m.anchor_size * 2**i for i in range(levels)]
    min_size = m.min_size or (info["image_size"] if info.get("dataset") == "scenes" else 800)
    max_size = m.max_size or (min_size if info.get("dataset") == "scenes" else 1333)
    common = {"num_classes": info["num_classes"], "min_size": min_size, "max_size": max_size,
              "detections_per_img": m.detections_per_image}
    if m.arch == "fasterrcnn":
        anchors = AnchorGenerator(tuple((s,) for s in sizes), ((0.5, 1.0, 2.0),) * levels)
        roi = MultiScaleRoIAlign([str(s) for s in stages], output_size=7, sampling_ratio=2)
        proposals = {}
        if m.proposals > 0:  # small images need far fewer proposals than COCO's 2000
            proposals = {"rpn_pre_nms_top_n_train": 2 * m.proposals, "rpn_post_nms_top_n_train": m.proposals,
                         "rpn_pre_nms_top_n_test": 2 * m.proposals, "rpn_post_nms_top_n_test": m.proposals}
        return FasterRCNN(fpn, rpn_anchor_generator=anchors, box_roi_pool=roi, box_score_thresh=m.score_thresh,
                          box_batch_size_per_image=m.rois_per_image, **proposals, **common)
    if m.arch == "retinanet":  # three scales per octave (Lin et al. 2017)
        anchors = AnchorGenerator(tuple((s, round(s * 2 ** (1 / 3)), round(s * 2 ** (2 / 3))) for s in sizes),
                                  ((0.5, 1.0, 2.0),) * levels)
        head = RetinaNetHead(m.fpn_channels, anchors.num_anchors_per_location()[0], info["num_classes"],
                             norm_layer=head_norm(m.head_norm, m.fpn_channels))
        head.regression_head._loss_type = m.box_loss  # torchvision's own switch (its v2 builder sets "giou")
        return RetinaNet(fpn, anchor_generator=anchors, head=head, score_thresh=m.score_thresh, **common)
    anchors = AnchorGenerator(tuple((s,) for s in sizes), ((1.0,),) * levels)  # FCOS: one point per location
    return FCOS(fpn, anchor_generator=anchors, score_thresh=m.score_thresh, **common)


def loss(model: nn.Module, batch: tuple[list[torch.Tensor], list[dict]],
         cfg: DetectionConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    images, targets = batch
    losses = model(images, targets)
    return sum(losses.values()), {k: v.detach() for k, v in losses.items()}  # device tensors: no sync per step
