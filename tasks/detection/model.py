"""torchvision detectors (Faster R-CNN, RetinaNet, FCOS) on any registry image backbone.

The backbone is wrapped by ``backbones.adapters.fpn`` (torchvision's own FPN); anchors get
one size per pyramid level, doubling from ``model.anchor_size``. Nothing of the detector
itself is written here: heads, RPN, RoI pooling, losses and NMS are torchvision's.
"""

from __future__ import annotations

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
from torchvision.ops.misc import FrozenBatchNorm2d

import backbones
from tasks.core.backbone import build_backbone
from tasks.core.errors import UserError

from .config import DetectionConfig

ARCHS = ("fasterrcnn", "retinanet", "fcos")
BOX_LOSSES = ("l1", "smooth_l1", "giou", "diou", "ciou")  # RetinaNet box regression losses in torchvision


def freeze_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm2d`` by torchvision's ``FrozenBatchNorm2d`` with the same statistics."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            for key in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, key).copy_(getattr(child, key).detach())
            setattr(module, name, frozen)
        else:
            freeze_batch_norm(child)
    return module


def freeze_stages(body: nn.Module, trainable: int) -> None:
    """Only the last ``trainable`` stages learn (torchvision's ``trainable_backbone_layers``)."""
    stages = [info.module for info in body.feature_info]
    if trainable < 0 or trainable >= len(stages):
        return
    frozen_stages = set(stages[: len(stages) - trainable])
    for name, param in body.named_parameters():
        top = name.split(".")[0]
        if top in frozen_stages or top not in stages:  # the stem is frozen with the first stage
            param.requires_grad_(False)


def head_norm(kind: str, channels: int) -> Callable[[int], nn.Module] | None:
    """Norm layer of the RetinaNet head: ``group`` (GroupNorm(32), torchvision's v2 head) or ``none`` (v1)."""
    if kind == "none":
        return None
    if kind != "group":
        raise UserError(f"model.head_norm={kind!r} is not valid; choose group or none")
    if channels % 32:
        raise UserError(f"model.head_norm=group needs model.fpn_channels divisible by 32 (got {channels})")
    return partial(nn.GroupNorm, 32)


def build_model(cfg: DetectionConfig, info: dict[str, Any]) -> nn.Module:
    m = cfg.model
    if m.arch not in ARCHS:
        raise UserError(f"model.arch={m.arch!r} is not valid; choose one of: {', '.join(ARCHS)}")
    body = build_backbone(cfg.backbone, "image", in_channels=3)
    if m.frozen_bn:
        freeze_batch_norm(body)
    freeze_stages(body, m.trainable_stages)
    n = len(body.feature_info)
    stages = list(m.returned_stages) or list(range(max(0, n - 3), n))
    extra = LastLevelP6P7(m.fpn_channels, m.fpn_channels) if m.arch == "retinanet" else LastLevelMaxPool()
    fpn = backbones.adapters.fpn(body, m.fpn_channels, stages, extra)
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
        if m.box_loss not in BOX_LOSSES:
            raise UserError(f"model.box_loss={m.box_loss!r} is not valid; choose one of: {', '.join(BOX_LOSSES)}")
        head.regression_head._loss_type = m.box_loss  # torchvision's own switch (its v2 builder sets "giou")
        return RetinaNet(fpn, anchor_generator=anchors, head=head, score_thresh=m.score_thresh, **common)
    anchors = AnchorGenerator(tuple((s,) for s in sizes), ((1.0,),) * levels)  # FCOS: one point per location
    return FCOS(fpn, anchor_generator=anchors, score_thresh=m.score_thresh, **common)


def loss(model: nn.Module, batch: tuple[list[torch.Tensor], list[dict]],
         cfg: DetectionConfig) -> tuple[torch.Tensor, dict[str, float]]:
    images, targets = batch
    losses = model(images, targets)
    return sum(losses.values()), {k: float(v.detach()) for k, v in losses.items()}
