"""Settings of the detection task."""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks.core.config import BackboneConfig, OptimConfig, TrainerConfig


@dataclass
class DataConfig:
    """``dataset``: ``auto`` (default: ``scenes`` without ``root``, else ``coco`` when a COCO layout
    is found under ``root``), ``scenes`` (embedded default, generated into the cache as COCO) or
    ``coco`` (``root/train/{images,annotations.json}`` and ``root/val/...``, the official tree
    ``root/annotations/instances_train2017.json`` + ``root/train2017/``, or the explicit paths below)."""

    dataset: str = "auto"
    root: str = ""
    train_images: str = ""  # explicit COCO paths (relative to root), e.g. train2017
    train_annotations: str = ""  # e.g. annotations/instances_train2017.json
    val_images: str = ""
    val_annotations: str = ""
    batch_size: int = 8
    strict: bool = False  # true: an unreadable data file is an error, not a counted skip with a warning
    augment: bool = True
    scale_jitter: float = 0.25  # random scale in [1 - j, 1 + j]
    aspect_ratio_group_factor: int = 3  # batch images of similar aspect ratio (2k+2 bins); -1 = off
    limit_train: int = 0
    limit_val: int = 0
    # scene generator (dataset=scenes)
    num_train: int = 2000
    num_val: int = 200
    image_size: int = 128
    min_objects: int = 2
    max_objects: int = 6
    min_object_size: int = 20
    max_object_size: int = 56


@dataclass
class ModelConfig:
    """Detector on top of the backbone's FPN (all heads are torchvision's)."""

    arch: str = "fasterrcnn"  # fasterrcnn | retinanet | fcos
    fpn_channels: int = 128
    returned_stages: list[int] = field(default_factory=list)  # empty = the last three
    anchor_size: int = 16  # smallest anchor; doubles per pyramid level
    min_size: int = 0  # detector's internal resize; 0 = data.image_size (scenes) or 800 (COCO)
    max_size: int = 0  # 0 = same as min_size for scenes, 1333 for COCO
    proposals: int = 0  # RPN proposals kept after NMS per image; 0 = torchvision's 2000/1000
    rois_per_image: int = 512  # RoIs sampled per image for the box head's loss
    head_norm: str = "group"  # RetinaNet head: group (GroupNorm, torchvision's v2 head) | none (v1)
    box_loss: str = "giou"  # RetinaNet box loss: l1 | smooth_l1 | giou | diou | ciou (v2 uses giou)
    score_thresh: float = 0.05
    detections_per_image: int = 100


@dataclass
class DetectionConfig:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(name="resnet18"))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.02, weight_decay=1e-4, nesterov=False))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
