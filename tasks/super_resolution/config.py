"""Settings of the super-resolution task (one dataclass per section)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks.core.config import BackboneConfig, OptimConfig, TrainerConfig


@dataclass
class DataConfig:
    """Which images, at which scale, cut into which training patches.

    ``dataset``: ``auto`` (default: ``skimage`` without ``root``, else ``folder`` when DIV2K-style
    HR folders or images are found under ``root``), ``skimage`` (embedded default: the photos
    bundled in the scikit-image wheel plus scikit-learn's two sample images, fixed train/val
    split, no download) or ``folder`` (``root/train_HR`` + ``root/valid_HR`` as DIV2K, also
    with DIV2K's ``DIV2K_`` prefix, or one flat folder of images whose every
    ``val_every``-th file, sorted by name, is held out). LR images come from the optional LR
    folders (``root/train_LR_bicubic/X2``, ``root/X2``, ...) or are made by bicubic
    downscaling with antialiasing.
    """

    dataset: str = "auto"
    root: str = ""
    scale: int = 2  # 2, 3 or 4
    batch_size: int = 16  # global batch of training patches (split over DDP processes)
    strict: bool = False  # true: an unreadable data file is an error, not a counted skip with a warning
    patch_size: int = 96  # HR patch side; the LR patch is patch_size / scale
    patches_per_image: int = 64  # random patches per training image per epoch
    augment: bool = True  # flips and 90-degree rotations, identical on HR and LR
    train_lr: str = ""  # LR folder for training images; empty = standard layout under root, else bicubic
    val_lr: str = ""  # LR folder for validation images; same rule
    val_every: int = 10  # flat folder: every n-th image (by name) is a validation image
    val_crop: int = 0  # > 0: centre-crop validation HR images to this side (faster evaluation)
    limit_train: int = 0  # > 0 keeps the first n training images (quick runs, tests)
    limit_val: int = 0
    grayscale_train: bool = True  # skimage: also train on its grayscale photos (as RGB)


@dataclass
class ModelConfig:
    """Head on the shared body: sub-pixel upsampler, tail conv, optional global residual."""

    global_residual: bool = False  # VDSR-style: predict the residual added to the bicubic upsampling
    loss: str = "l1"  # l1 | mse
    tile: int = 0  # LR tile side for evaluation/prediction; 0 = whole image at once
    tile_overlap: int = 16  # LR pixels of context added around every tile


@dataclass
class SuperResolutionConfig:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(name="edsr_baseline"))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adam", lr=2e-4, weight_decay=0.0,
                                                                   schedule="constant"))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
