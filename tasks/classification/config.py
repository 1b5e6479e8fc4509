"""Settings of the classification task (one dataclass per section)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks.core.config import BackboneConfig, OptimConfig, TrainerConfig


@dataclass
class DataConfig:
    """Which images. ``dataset``: auto (default: fashion_mnist without ``root``, else the layout
    found under ``root``: imagefolder, cifar10, cifar100 or idx), fashion_mnist (embedded
    default, Debian package), idx (any MNIST-format folder), digits (scikit-learn, always
    available), imagefolder (``root/train``, ``root/val``), cifar10 / cifar100 (python-pickle
    folder: ``root`` holds ``cifar-10-batches-py/`` or is that folder)."""

    dataset: str = "auto"
    root: str = ""  # empty = the dataset's standard location (auto: the embedded Fashion-MNIST)
    batch_size: int = 128  # global batch (split over DDP processes)
    strict: bool = False  # true: an unreadable data file is an error, not a counted skip with a warning
    image_size: int = 0  # 0 = native size (ImageFolder default 224)
    augment: bool = True
    crop_padding: int = 2  # random crop with this zero padding
    hflip: bool = True
    limit_train: int = 0  # > 0 keeps a seeded random subset (quick runs, tests)
    limit_val: int = 0


@dataclass
class ModelConfig:
    dropout: float = 0.0


@dataclass
class ClassificationConfig:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
