"""Classification datasets: the offline default and the formats users bring.

In-memory sources (idx files, scikit-learn digits, CIFAR pickles) become a uint8 tensor
``(N, C, H, W)``; ImageFolder trees are read lazily. Normalisation statistics come from
the training data itself. Augmentation is torchvision.transforms.v2 (random crop with
padding, horizontal flip).

``data.dataset=auto`` (the default) reads the embedded Fashion-MNIST when ``data.root`` is
empty, else the loader whose layout :func:`detect_layout` finds under the root.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Subset
from torchvision.transforms import v2

from tasks.core.errors import UserError
from tasks.core.idx import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, find_idx, load_idx_split
from tasks.core.layouts import AUTO, Layout, match_layout, resolve_dataset, subfolders
from tasks.core.supervised import DataBundle

from .config import ClassificationConfig, DataConfig

DATASETS = (AUTO, "fashion_mnist", "idx", "digits", "imagefolder", "cifar10", "cifar100")
DEFAULT_DATASET = "fashion_mnist"  # what `auto` means without data.root: the embedded offline default
CIFAR_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}  # torchvision's base_folder


def _imagefolder_probe(root: Path) -> str | None:
    classes = subfolders(root / "train")
    return f"train/<class>/ ({len(classes)} class folders)" if classes else None


def _cifar_probe(folder: str) -> Callable[[Path], str | None]:
    def probe(root: Path) -> str | None:
        if root.name == folder:
            return f"{folder}/ (data.root itself)"
        return f"{folder}/" if (root / folder).is_dir() else None

    return probe


def _idx_probe(root: Path) -> str | None:
    try:
        return find_idx(root, "train", "images").name
    except UserError:
        return None


#: the layouts `auto` recognises under data.root, in the order they are tried
LAYOUTS = (
    Layout("imagefolder", "train/<class>/", "ImageFolder", _imagefolder_probe),
    Layout("cifar10", CIFAR_FOLDERS["cifar10"], "CIFAR-10", _cifar_probe(CIFAR_FOLDERS["cifar10"])),
    Layout("cifar100", CIFAR_FOLDERS["cifar100"], "CIFAR-100", _cifar_probe(CIFAR_FOLDERS["cifar100"])),
    Layout("idx", "train-images-idx3-ubyte[.gz]", "idx", _idx_probe),
)


def detect_layout(root: str | Path) -> str:
    """The dataset name (imagefolder, cifar10, cifar100, idx) whose files lie under ``root``.

    Raises :class:`UserError` naming the layouts looked for when none matches, or when
    ``root`` does not exist.
    """
    return match_layout(root, LAYOUTS)[0].dataset


class TensorImages(Dataset):
    """uint8 images ``(N, C, H, W)`` + labels, with a per-sample transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: v2.Transform) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[i]), self.labels[i]


def _idx(root: str, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = load_idx_split(root, train)
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels)


def _digits(train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 real 8x8 digits (values 0..16), a fixed 80/20 split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = torch.from_numpy((d.images * (255.0 / 16.0)).round().astype(np.uint8)).unsqueeze(1)
    labels = torch.from_numpy(d.target.astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    cut = int(0.8 * len(labels))
    keep = order[:cut] if train else order[cut:]
    return images[keep], labels[keep]


def _cifar(root: str, train: bool, hundred: bool) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    from torchvision.datasets import CIFAR10, CIFAR100

    cls = CIFAR100 if hundred else CIFAR10
    if Path(root).name == cls.base_folder:  # data.root may name the unpacked folder itself
        root = str(Path(root).parent)
    try:
        ds = cls(root, train=train, download=False)
    except RuntimeError:
        raise UserError(f"no {cls.__name__} python-pickle folder under {root!r}; unpack "
                        f"cifar-{'100' if hundred else '10'}-python.tar.gz there") from None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return images, torch.tensor(ds.targets, dtype=torch.int64), list(ds.classes)


def _source(cfg: DataConfig, train: bool) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    if cfg.dataset == "fashion_mnist":
        root = cfg.root or str(FASHION_MNIST_DIR)
        if not Path(root).is_dir():
            raise UserError(f"Fashion-MNIST not found in {root}; run `sudo apt-get install dataset-fashion-mnist` "
                            "(or `make venv`), or set data.dataset=digits")
        return (*_idx(root, train), list(FASHION_MNIST_CLASSES))
    if cfg.dataset == "idx":
        if not cfg.root:
            raise UserError("data.dataset=idx needs data.root=<folder with *-images-idx3-ubyte[.gz] files>")
        images, labels = _idx(cfg.root, train)
        return images, labels, [str(i) for i in range(int(labels.max()) + 1)]
    if cfg.dataset == "digits":
        return (*_digits(train), [str(i) for i in range(10)])
    if cfg.dataset in ("cifar10", "cifar100"):
        if not cfg.root:
            raise UserError(f"data.dataset={cfg.dataset} needs data.root=<folder holding cifar-*-python/>")
        return _cifar(cfg.root, train, cfg.dataset == "cifar100")
    raise UserError(f"data.dataset={cfg.dataset!r} is not valid; choose one of: {', '.join(DATASETS)}")


def _subset(ds: Dataset, limit: int, seed: int) -> Dataset:
    if limit <= 0 or limit >= len(ds):
        return ds
    keep = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:limit]
    return Subset(ds, keep.tolist())


def eval_transform(info: dict[str, Any]) -> v2.Transform:
    """uint8 image -> normalised float tensor at the model's size (also used by predict)."""
    steps: list[v2.Transform] = []
    if info.get("resize"):
        steps += [v2.Resize(info["image_size"], antialias=True), v2.CenterCrop(info["image_size"])]
    return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(info["mean"], info["std"])])


def train_transform(cfg: DataConfig, info: dict[str, Any]) -> v2.Transform:
    steps: list[v2.Transform] = []
    size = info["image_size"]
    if info.get("resize"):
        steps.append(v2.RandomResizedCrop(size, scale=(0.35, 1.0), antialias=True))
    elif cfg.augment and cfg.crop_padding > 0:
        steps.append(v2.RandomCrop(size, padding=cfg.crop_padding))
    if cfg.augment and cfg.hflip:
        steps.append(v2.RandomHorizontalFlip())
    return v2.Compose([*steps, v2.ToDtype(torch.float32, scale=True), v2.Normalize(info["mean"], info["std"])])


def _stats(images: torch.Tensor) -> tuple[list[float], list[float]]:
    x = images[:20000].float().div(255)
    return x.mean((0, 2, 3)).tolist(), x.std((0, 2, 3)).clamp_min(1e-3).tolist()


def _imagefolder(cfg: ClassificationConfig, split: str) -> DataBundle:
    from torchvision.datasets import ImageFolder
    from torchvision.io import ImageReadMode, decode_image

    root = Path(cfg.data.root)
    for sub in ("train", "val"):
        if not (root / sub).is_dir():
            raise UserError(f"ImageFolder needs {root / sub}/ with one folder per class; set data.root")
    size = cfg.data.image_size or 224

    def loader(path: str) -> torch.Tensor:
        return decode_image(path, mode=ImageReadMode.RGB)

    probe = ImageFolder(str(root / "train"), loader=loader)
    if len(probe.classes) < 2:  # it would train, then fail at evaluation inside torchmetrics
        raise UserError(f"{root / 'train'} has {len(probe.classes)} class folder(s); classification needs at least 2")
    info = {"num_classes": len(probe.classes), "classes": probe.classes, "in_channels": 3, "image_size": size,
            "resize": True, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    info["dataset"] = "imagefolder"
    val = ImageFolder(str(root / "val"), loader=loader, transform=eval_transform(info))
    if val.classes != probe.classes:
        raise UserError(f"{root}/val has classes {val.classes[:5]}... unlike train's {probe.classes[:5]}...; "
                        "use the same class folders")
    train = ImageFolder(str(root / "train"), loader=loader, transform=train_transform(cfg.data, info))
    return DataBundle(_subset(train, cfg.data.limit_train, cfg.seed), _subset(val, cfg.data.limit_val, cfg.seed),
                      info)


def build_data(cfg: ClassificationConfig, split: str = "train") -> DataBundle:
    """Train/val datasets and ``info`` (classes, channels, size, normalisation, dataset) for ``cfg``.

    ``data.dataset=auto`` is resolved here, once; ``info["dataset"]`` records the name used.
    """
    dataset = resolve_dataset(cfg.data.dataset, cfg.data.root, DEFAULT_DATASET, LAYOUTS)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dataset=dataset))
    if cfg.data.dataset == "imagefolder":
        return _imagefolder(cfg, split)
    train_x, train_y, classes = _source(cfg.data, train=True)
    val_x, val_y, _ = _source(cfg.data, train=False)
    if cfg.data.image_size and cfg.data.image_size != train_x.shape[-1]:
        resize = v2.Resize(cfg.data.image_size, antialias=True)
        train_x, val_x = resize(train_x), resize(val_x)
    mean, std = _stats(train_x)
    info = {"num_classes": len(classes), "classes": classes, "in_channels": int(train_x.shape[1]),
            "image_size": int(train_x.shape[-1]), "resize": False, "mean": mean, "std": std, "dataset": dataset}
    train = TensorImages(train_x, train_y, train_transform(cfg.data, info))
    val = TensorImages(val_x, val_y, eval_transform(info))
    return DataBundle(_subset(train, cfg.data.limit_train, cfg.seed), _subset(val, cfg.data.limit_val, cfg.seed),
                      info)
