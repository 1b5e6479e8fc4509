"""COCO-format detection data (users' datasets and the generated scenes alike).

Category ids are remapped to contiguous labels ``1..K`` (0 is the detectors' background);
bad annotations are dropped with one warning that counts them; a missing image file is a
one-line error naming it. Training augmentation is albumentations with box-aware params.

``data.dataset=auto`` (the default) generates the embedded scenes when ``data.root`` is
empty, else reads the COCO layout :func:`detect_layout` finds under the root: per-split
``train/`` + ``val/`` folders (``images/`` + ``annotations.json``), or the official COCO
tree (``annotations/instances_train2017.json`` + ``train2017/``, and the same for val).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import sys
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from tasks.core.errors import UserError
from tasks.core.layouts import AUTO, Layout, announce, first_match, match_layout, resolve_dataset
from tasks.core.supervised import DataBundle

from .config import DataConfig, DetectionConfig
from .scenes import scenes_root

DATASETS = (AUTO, "scenes", "coco")
DEFAULT_DATASET = "scenes"  # what `auto` means without data.root: the embedded generated scenes
SPLIT_FILES = ("train/images", "train/annotations.json", "val/images", "val/annotations.json")


def coco_files(root: str | Path) -> tuple[str, str, str, str] | None:
    """``(train_images, train_annotations, val_images, val_annotations)`` relative to ``root``.

    The per-split layout (:data:`SPLIT_FILES`) or the official COCO tree
    (``annotations/instances_{train,val}<year>.json`` with images in ``<split><year>/`` or
    ``images/<split><year>/``); ``None`` when neither is there.
    """
    root = Path(root)
    if all((root / f).is_file() for f in SPLIT_FILES[1::2]):
        return SPLIT_FILES
    found = []
    for split in ("train", "val"):
        ann = first_match(root / "annotations", [f"instances_{split}*.json"])
        if ann is None:
            return None
        name = ann.stem.removeprefix("instances_")  # instances_train2017 -> train2017
        images = next((d for d in (name, f"images/{name}") if (root / d).is_dir()), name)
        found += [images, f"annotations/{ann.name}"]
    return found[0], found[1], found[2], found[3]


def _split_probe(root: Path) -> str | None:
    return "train/annotations.json + val/annotations.json" if coco_files(root) == SPLIT_FILES else None


def _official_probe(root: Path) -> str | None:
    files = coco_files(root)
    return f"{files[1]} + {files[3]}" if files is not None and files != SPLIT_FILES else None


#: the layouts `auto` recognises under data.root, in the order they are tried
LAYOUTS = (
    Layout("coco", "{train,val}/annotations.json + images/", "COCO per split", _split_probe),
    Layout("coco", "annotations/instances_{train,val}*.json", "COCO", _official_probe),
)


def detect_layout(root: str | Path) -> str:
    """The dataset name (``coco``) whose annotation files lie under ``root``.

    Raises :class:`UserError` naming the layouts looked for when none matches, or when
    ``root`` does not exist.
    """
    return match_layout(root, LAYOUTS)[0].dataset


def read_coco(ann_file: Path, images_dir: Path) -> tuple[list[dict], list[dict], dict[str, int]]:
    """Images (with their valid annotations), categories, and counts of dropped annotations."""
    from pycocotools.coco import COCO

    if not ann_file.is_file():
        raise UserError(f"annotation file {ann_file} does not exist; give data.root with train/ and val/ "
                        "(images/ + annotations.json) or set data.*_annotations")
    # pycocotools prints progress lines; they would break the one-line error contract, so they are dropped
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            coco = COCO(str(ann_file))
        except Exception as err:
            first = (str(err).strip().splitlines() or [""])[0][:160]
            raise UserError(f"{ann_file} is not a COCO annotation file ({type(err).__name__}: {first})") from None
    categories = sorted(coco.loadCats(coco.getCatIds()), key=lambda c: c["id"])
    known = {c["id"] for c in categories}
    dropped = {"non-positive size": 0, "outside the image": 0, "unknown category": 0, "crowd": 0}
    records = []
    for img in coco.loadImgs(sorted(coco.getImgIds())):
        path = images_dir / img["file_name"]
        if not path.is_file():
            raise UserError(f"image file {path} (listed in {ann_file.name}) does not exist; fix the path or the json")
        w, h = img["width"], img["height"]
        boxes, cats = [], []
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            x, y, bw, bh = ann["bbox"]
            x0, y0, x1, y1 = max(0.0, x), max(0.0, y), min(float(w), x + bw), min(float(h), y + bh)
            if ann.get("iscrowd", 0):
                dropped["crowd"] += 1
            elif ann["category_id"] not in known:
                dropped["unknown category"] += 1
            elif bw <= 0 or bh <= 0:
                dropped["non-positive size"] += 1
            elif x1 - x0 < 1 or y1 - y0 < 1:
                dropped["outside the image"] += 1
            else:
                boxes.append([x0, y0, x1, y1])
                cats.append(ann["category_id"])
        records.append({"path": path, "id": img["id"], "width": w, "height": h, "boxes": boxes,
                        "category_ids": cats})
    bad = {k: v for k, v in dropped.items() if v and k != "crowd"}
    detail = ", ".join(f"{v} {k}" for k, v in bad.items())
    if not any(r["boxes"] for r in records):  # training would run and report mAP -1
        raise UserError(f"{ann_file} has no usable box annotations ({len(records)} images"
                        f"{'; dropped ' + detail if detail else ''}); check its annotations and categories")
    if bad:
        print(f"warning: {ann_file.name}: dropped {sum(bad.values())} bad annotations ({detail})", file=sys.stderr)
    return records, categories, dropped


class CocoDetection(Dataset):
    """Image (float CHW in [0, 1]) and torchvision target ``{"boxes", "labels", "image_id"}``."""

    def __init__(self, records: list[dict], label_of: dict[int, int], transform: A.Compose | None = None) -> None:
        self.records, self.label_of, self.transform = records, label_of, transform

    def __len__(self) -> int:
        return len(self.records)

    def source(self, i: int) -> str:
        """The image file of sample ``i`` (named when it cannot be read)."""
        return str(self.records[i]["path"])

    @property
    def aspect_ratios(self) -> list[float]:
        """Width / height of every image, from the annotation file (no image is opened)."""
        return [r["width"] / r["height"] for r in self.records]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, dict[str, Any]]:
        rec = self.records[i]
        image = np.array(Image.open(rec["path"]).convert("RGB"))
        boxes = np.asarray(rec["boxes"], np.float32).reshape(-1, 4)
        labels = [self.label_of[c] for c in rec["category_ids"]]
        if self.transform is not None:  # seeded from torch: runs and resumed runs are reproducible
            self.transform.set_random_seed(int(torch.randint(0, 2**31 - 1, ())))
            out = self.transform(image=image, bboxes=boxes, labels=labels)
            image, boxes, labels = out["image"], np.asarray(out["bboxes"], np.float32).reshape(-1, 4), out["labels"]
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float().div(255)
        return tensor, {"boxes": torch.from_numpy(boxes), "labels": torch.as_tensor(labels, dtype=torch.int64),
                        "image_id": rec["id"]}


def train_augmentation(cfg: DataConfig) -> A.Compose:
    """Flips, scale jitter and colour jitter; boxes follow, and those pushed out are dropped."""
    j = cfg.scale_jitter
    return A.Compose(
        [A.HorizontalFlip(p=0.5), A.Affine(scale=(1 - j, 1 + j), keep_ratio=True, p=0.7),
         A.ColorJitter(0.3, 0.3, 0.3, 0.05, p=0.5)],
        bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"], min_visibility=0.3, clip=True,
                                 filter_invalid_bboxes=True),
    )


def collate(batch: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """Detectors take lists: images may differ in size and hold different numbers of boxes."""
    images, targets = zip(*batch)
    return list(images), list(targets)


def _paths(cfg: DataConfig, seed: int) -> tuple[Path, Path, Path, Path]:
    if cfg.dataset == "scenes":
        root = scenes_root(cfg, seed)
    elif cfg.dataset == "coco":
        if not cfg.root:
            raise UserError("data.dataset=coco needs data.root=<folder with train/ and val/ (images/ + "
                            "annotations.json)>")
        root = Path(cfg.root)
    else:
        raise UserError(f"data.dataset={cfg.dataset!r} is not valid; choose one of: {', '.join(DATASETS)}")
    standard = (coco_files(root) if cfg.dataset == "coco" else None) or SPLIT_FILES
    explicit = (cfg.train_images, cfg.train_annotations, cfg.val_images, cfg.val_annotations)
    train_images, train_ann, val_images, val_ann = (root / (e or s) for e, s in zip(explicit, standard))
    return train_images, train_ann, val_images, val_ann


def aspect_ratio_groups(aspect_ratios: list[float], factor: int) -> list[int]:
    """Bin width/height ratios into ``2 * factor + 2`` groups, log-spaced between 1/2 and 2.

    Batches drawn from one group need little padding (torchvision's detection reference
    groups the same way; its ``--aspect-ratio-group-factor`` is ``factor``).
    """
    edges = 2.0 ** np.linspace(-1, 1, 2 * factor + 1)
    return np.digitize(np.asarray(aspect_ratios, np.float64), edges).tolist()


def build_data(cfg: DetectionConfig, split: str = "train") -> DataBundle:
    """Train/val COCO datasets, the label map and sizes (``info``) for the model.

    ``data.dataset=auto`` is resolved here, once (explicit ``data.*_annotations`` paths mean
    coco); ``info["dataset"]`` records the name used.
    """
    d = cfg.data
    if d.dataset == AUTO and d.root and d.train_annotations and d.val_annotations:
        dataset = "coco"
        announce(dataset, "data.train_annotations and data.val_annotations are set")
    else:
        dataset = resolve_dataset(d.dataset, d.root, DEFAULT_DATASET, LAYOUTS)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(d, dataset=dataset))
    train_images, train_ann, val_images, val_ann = _paths(cfg.data, cfg.seed)
    val_records, categories, _ = read_coco(val_ann, val_images)
    train_records = read_coco(train_ann, train_images)[0] if split == "train" else []
    label_of = {c["id"]: k + 1 for k, c in enumerate(categories)}
    info = {"num_classes": len(categories) + 1, "classes": ["__background__"] + [c["name"] for c in categories],
            "category_ids": [c["id"] for c in categories],  # label k is category_ids[k - 1] of the json
            "image_size": cfg.data.image_size,
            "dataset": cfg.data.dataset}
    transform = train_augmentation(cfg.data) if cfg.data.augment else None
    limit_train, limit_val = cfg.data.limit_train or None, cfg.data.limit_val or None
    train = CocoDetection(train_records[:limit_train], label_of, transform)
    val = CocoDetection(val_records[:limit_val], label_of)
    return DataBundle(train, val, info, collate_fn=collate)
