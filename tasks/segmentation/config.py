"""Settings of the semantic segmentation task."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tasks.core.config import BackboneConfig, OptimConfig, TrainerConfig


@dataclass
class DataConfig:
    """``dataset``: ``auto`` (default: ``scenes`` without ``root``, else the layout found under
    ``root``), ``scenes`` (embedded default: the generated scenes' instance masks painted into
    semantic masks), ``voc`` (``JPEGImages/`` + ``SegmentationClass/`` +
    ``ImageSets/Segmentation/{train,val}.txt``), ``paired`` (``images/`` + ``masks/`` with the
    same stems, optional ``classes.txt``; split in ``train/`` and ``val/`` or not) or ``coco``
    (instance or panoptic json, painted into semantic masks with pycocotools)."""

    dataset: str = "auto"
    root: str = ""
    batch_size: int = 8
    strict: bool = False  # true: an unreadable data file is an error, not a counted skip with a warning
    ignore_index: int = 255  # mask value that no loss or metric counts (VOC's object borders)
    num_classes: int = 0  # paired masks without classes.txt: 0 = the largest index found + 1
    train_split: str = "train"  # voc: ImageSets/Segmentation/<name>.txt
    val_split: str = "val"
    val_fraction: float = 0.1  # paired folder without train/ and val/: share held out (a fixed split)
    augment: bool = True
    crop_size: int = 96  # training crop (padded with the ignore index where the image is smaller); 0 = whole images
    scale_range: list[float] = field(default_factory=lambda: [0.75, 1.25])  # random rescale before the crop
    hflip: bool = True
    color_jitter: float = 0.2  # brightness/contrast/saturation jitter; 0 = off
    limit_train: int = 0
    limit_val: int = 0
    # scene generator (dataset=scenes); the same settings as detection's scenes
    num_train: int = 1000
    num_val: int = 200
    image_size: int = 128
    min_objects: int = 2
    max_objects: int = 6
    min_object_size: int = 20
    max_object_size: int = 56


@dataclass
class ModelConfig:
    """Any segmentation-models-pytorch architecture on a registry backbone (an ``rs-`` encoder)."""

    arch: str = "unet"  # unet | unetplusplus | fpn | deeplabv3 | deeplabv3plus | pspnet | linknet | manet | pan | ...
    encoder_depth: int = 0  # encoder levels the decoder sees (stem + stages); 0 = the architecture's default
    output_stride: int = 0  # deeplabv3(plus)/pan: 8 or 16 (dilated last stages); 0 = the architecture's default
    loss: str = "ce+dice"  # '+'-joined terms, optionally weighted: ce, dice, focal, lovasz, jaccard ("ce+0.5*dice")
    options: dict[str, Any] = field(default_factory=dict)  # more arguments for SMP's model, e.g. decoder_channels
    window: int = 512  # predict: images larger than this are segmented in overlapping windows of this size


@dataclass
class SegmentationConfig:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(name="resnet18"))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adamw", lr=1e-3, weight_decay=1e-4))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
