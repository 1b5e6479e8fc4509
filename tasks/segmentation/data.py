"""Semantic segmentation data: images + index masks from any source, albumentations, padded batches.

Every sample is an RGB image (float CHW, normalised with ImageNet statistics) and an int64
mask of class indices, ``data.ignore_index`` (255, as in VOC) where no label counts. Training
rescales, crops (``data.crop_size``), flips and colour-jitters with albumentations, the mask
following with nearest interpolation. Validation keeps whole images; :class:`PadCollate`
pads each batch (image with the mean, mask with the ignore index) to the output stride the
model needs, so images of any size and shape work.

A mask with a class index the dataset does not have (other than the ignore index), or with
another size than its image, is a one-line :class:`UserError` naming the file.

``data.dataset=auto`` (the default) generates the embedded scenes when ``data.root`` is
empty, else reads the layout :func:`sources.detect_layout` finds under the root.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from tasks.core.errors import UserError
from tasks.core.layouts import AUTO, resolve_dataset
from tasks.core.scenes import scenes_root
from tasks.core.supervised import DataBundle

from . import coco, sources
from .config import DataConfig, SegmentationConfig
from .model import input_multiple

DATASETS = (AUTO, "scenes", "voc", "paired", "coco")
DEFAULT_DATASET = "scenes"  # what `auto` means without data.root: the embedded generated scenes
MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics: the usual input scale for ResNet encoders
STD = (0.229, 0.224, 0.225)


def read_image(path: Path) -> np.ndarray:
    """RGB uint8 ``H x W x 3`` (PIL's errors pass through: the loader's bad-file policy handles them)."""
    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def read_index_mask(path: Path) -> np.ndarray:
    """An index PNG (mode ``L`` or ``P``, VOC's palette PNGs) as uint8 ``H x W`` class indices."""
    with Image.open(path) as im:
        if im.mode not in sources.INDEX_MODES:
            raise sources.not_an_index_mask(path, im.mode)
        mask = np.asarray(im)
    if mask.max(initial=0) > 255:
        raise UserError(f"mask {path} holds values above 255; at most 255 classes (and the ignore index) fit")
    return mask.astype(np.uint8)


class SegmentationDataset(Dataset):
    """``(image float 3xHxW normalised, mask int64 HxW)`` for each record of :mod:`.sources`."""

    def __init__(self, records: list[dict[str, Any]], num_classes: int, ignore_index: int,
                 transform: A.Compose | None = None) -> None:
        self.records, self.num_classes, self.ignore_index = records, num_classes, ignore_index
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def source(self, i: int) -> str:
        """The image file of sample ``i`` (named when it cannot be read)."""
        return str(self.records[i]["image"])

    def mask_file(self, i: int) -> str:
        rec = self.records[i]
        return str(rec.get("mask") or rec.get("panoptic") or rec["image"])

    def read_mask(self, i: int) -> np.ndarray:
        rec = self.records[i]
        if "mask" in rec:
            return read_index_mask(rec["mask"])
        if "panoptic" in rec:
            return coco.read_panoptic(rec, self.ignore_index)
        return coco.paint_instances(rec, self.ignore_index)

    def check(self, i: int, image: np.ndarray, mask: np.ndarray) -> None:
        """One-line errors for a mask that cannot be right: wrong size, or a class that does not exist."""
        if mask.shape != image.shape[:2]:
            raise UserError(f"mask {self.mask_file(i)} is {mask.shape[1]}x{mask.shape[0]} but its image "
                            f"{self.source(i)} is {image.shape[1]}x{image.shape[0]}; masks must match their images")
        bad = (mask >= self.num_classes) & (mask != self.ignore_index)
        if bad.any():
            value = int(mask[bad].max())
            raise UserError(f"mask {self.mask_file(i)} has class index {value} but the dataset has "
                            f"{self.num_classes} classes (0..{self.num_classes - 1}, {self.ignore_index} = ignore); "
                            "fix the mask, or list every class in classes.txt / set data.num_classes")

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = read_image(self.records[i]["image"])
        mask = self.read_mask(i)
        self.check(i, image, mask)
        if self.transform is not None:  # seeded from torch: runs and resumed runs are reproducible
            self.transform.set_random_seed(int(torch.randint(0, 2**31 - 1, ())))
            out = self.transform(image=image, mask=mask)
            image, mask = out["image"], out["mask"]
        return to_tensor(image), torch.from_numpy(np.ascontiguousarray(mask)).long()


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 ``H x W x 3`` -> float ``3 x H x W`` normalised with :data:`MEAN` / :data:`STD`."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div_(255)
    return x.sub_(torch.tensor(MEAN).view(3, 1, 1)).div_(torch.tensor(STD).view(3, 1, 1))


def train_augmentation(cfg: DataConfig) -> A.Compose:
    """Random rescale, pad + crop to ``crop_size``, flip and colour jitter; the mask follows (nearest).

    Padding fills the image with the mean colour (zero after normalisation) and the mask with
    the ignore index, so padded pixels never count.
    """
    lo, hi = cfg.scale_range
    if not 0 < lo <= hi:
        raise UserError(f"data.scale_range={list(cfg.scale_range)} must be two numbers 0 < low <= high")
    steps: list[A.BasicTransform] = []
    if (lo, hi) != (1.0, 1.0):
        steps.append(A.RandomScale(scale_limit=(lo - 1, hi - 1), interpolation=cv2.INTER_LINEAR,
                                   mask_interpolation=cv2.INTER_NEAREST, p=1.0))
    if cfg.crop_size > 0:
        fill = tuple(round(255 * m) for m in MEAN)
        steps += [A.PadIfNeeded(cfg.crop_size, cfg.crop_size, position="top_left", border_mode=cv2.BORDER_CONSTANT,
                                fill=fill, fill_mask=cfg.ignore_index),
                  A.RandomCrop(cfg.crop_size, cfg.crop_size)]
    if cfg.hflip:
        steps.append(A.HorizontalFlip(p=0.5))
    if cfg.color_jitter > 0:
        j = cfg.color_jitter
        steps.append(A.ColorJitter(brightness=j, contrast=j, saturation=j, hue=0.0, p=0.8))
    return A.Compose(steps)


class PadCollate:
    """Stack a batch, padding right/bottom to a multiple of the model's output stride.

    Images pad with zeros (the mean colour after normalisation), masks with the ignore
    index, so padding changes neither loss nor metrics. A class, not a closure: loader
    workers pickle it.
    """

    def __init__(self, multiple: int, ignore_index: int) -> None:
        self.multiple, self.ignore_index = multiple, ignore_index

    def __call__(self, batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.multiple
        h = math.ceil(max(x.shape[1] for x, _ in batch) / m) * m
        w = math.ceil(max(x.shape[2] for x, _ in batch) / m) * m
        images = torch.zeros(len(batch), 3, h, w)
        masks = torch.full((len(batch), h, w), self.ignore_index, dtype=torch.int64)
        for k, (x, y) in enumerate(batch):
            images[k, :, : x.shape[1], : x.shape[2]] = x
            masks[k, : y.shape[0], : y.shape[1]] = y
        return images, masks


def _samples(cfg: SegmentationConfig, split: str) -> sources.Samples:
    d = cfg.data
    if d.dataset == "scenes":
        root = scenes_root(d, cfg.seed, task="segmentation")
        return sources.read_coco(root, split)
    if d.dataset not in DATASETS:
        raise UserError(f"data.dataset={d.dataset!r} is not valid; choose one of: {', '.join(DATASETS)}")
    if not d.root:
        raise UserError(f"data.dataset={d.dataset} needs data.root=<your dataset folder>")
    root = Path(d.root)
    if not root.is_dir():
        raise UserError(f"data.root={root} does not exist; point data.root at your dataset folder")
    if d.dataset == "voc":
        return sources.read_voc(root, d.train_split, d.val_split, split)
    if d.dataset == "paired":
        return sources.read_paired(root, d.val_fraction, d.num_classes, d.ignore_index, split)
    return sources.read_coco(root, split)


def build_data(cfg: SegmentationConfig, split: str = "train") -> DataBundle:
    """Train/val datasets, class names and the dataset used (``info``).

    ``data.dataset=auto`` is resolved here, once; ``info["dataset"]`` records the name used.
    """
    dataset = resolve_dataset(cfg.data.dataset, cfg.data.root, DEFAULT_DATASET, sources.LAYOUTS)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, dataset=dataset))
    d = cfg.data
    found = _samples(cfg, split)
    n = len(found.classes)
    if n < 2:
        raise UserError(f"the dataset has {n} class; segmentation needs at least 2 (e.g. background and object)")
    if not 0 <= d.ignore_index <= 255 or d.ignore_index < n:
        raise UserError(f"data.ignore_index={d.ignore_index} must lie in {n}..255 (masks are 8-bit and "
                        f"0..{n - 1} are classes)")
    info = {"num_classes": n, "classes": found.classes, "dataset": dataset, "mean": list(MEAN), "std": list(STD),
            **found.notes}
    transform = train_augmentation(d) if d.augment else None
    train = SegmentationDataset(found.train[: d.limit_train or None], n, d.ignore_index, transform)
    val = SegmentationDataset(found.val[: d.limit_val or None], n, d.ignore_index)
    return DataBundle(train, val, info, collate_fn=PadCollate(input_multiple(cfg.model), d.ignore_index))
