"""Where segmentation samples come from: the folder layouts users bring and the generated scenes.

Each reader returns :class:`Samples`: per split a list of records (an image and where its
mask comes from) plus the class names. Three kinds of mask source exist:

* ``{"image", "mask"}``: an index PNG (VOC's palette PNGs, a paired folder's masks);
* ``{"image", "width", "height", "anns"}``: COCO instance annotations, painted with
  pycocotools when the sample is read (:func:`.coco.paint_instances`);
* ``{"image", "panoptic", "segments"}``: a COCO panoptic PNG and its segment -> label map
  (:func:`.coco.read_panoptic`).

``data.dataset=auto`` picks the reader from :data:`LAYOUTS` (see :func:`detect_layout`).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tasks.core.errors import UserError
from tasks.core.layouts import Layout, match_layout

from . import coco

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
               "tvmonitor")
VOC_FOLDERS = ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation")


@dataclass
class Samples:
    """The records of both splits and the class names (index = mask value)."""

    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    classes: list[str]
    notes: dict[str, Any] = field(default_factory=dict)  # what the reader found (saved in data_info)


# ----------------------------------------------------------------------------- layouts
def voc_root(root: Path) -> Path | None:
    """The folder holding VOC's three sub-folders: ``root`` itself, ``root/VOC20xx`` or ``root/VOCdevkit/VOC20xx``."""
    for candidate in (root, *sorted(root.glob("VOC20*")), *sorted(root.glob("VOCdevkit/VOC20*"))):
        if all((candidate / f).is_dir() for f in VOC_FOLDERS):
            return candidate
    return None


def paired_dirs(root: Path) -> list[Path] | None:
    """``[train, val]`` folders each holding ``images/`` + ``masks/``, or ``[root]`` when only one pair exists."""
    split = [root / "train", root / "val"]
    if all((d / "images").is_dir() and (d / "masks").is_dir() for d in split):
        return split
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return [root]
    return None


def _voc_probe(root: Path) -> str | None:
    found = voc_root(root)
    return None if found is None else f"{'' if found == root else found.relative_to(root).as_posix() + '/'}" \
                                      "JPEGImages/ + SegmentationClass/"


def _paired_probe(root: Path) -> str | None:
    dirs = paired_dirs(root)
    if dirs is None:
        return None
    return "train/ and val/ (images/ + masks/)" if len(dirs) == 2 else "images/ + masks/"


def _coco_probe(root: Path) -> str | None:
    files = coco.coco_files(root)
    return None if files is None else f"{files[0][0].relative_to(root).as_posix()} + " \
                                      f"{files[1][0].relative_to(root).as_posix()}"


#: the layouts `auto` recognises under data.root, in the order they are tried
LAYOUTS = (
    Layout("voc", "JPEGImages/ + SegmentationClass/ + ImageSets/Segmentation/", "Pascal VOC", _voc_probe),
    Layout("paired", "images/ + masks/ (or train/ and val/ with both)", "paired folder", _paired_probe),
    Layout("coco", "{train,val}/annotations.json or annotations/{instances,panoptic}_*.json", "COCO", _coco_probe),
)


def detect_layout(root: str | Path) -> str:
    """The dataset name (voc, paired, coco) whose files lie under ``root``.

    Raises :class:`UserError` naming the layouts looked for when none matches, or when
    ``root`` does not exist.
    """
    return match_layout(root, LAYOUTS)[0].dataset


# ----------------------------------------------------------------------------- readers
def read_classes(path: Path) -> list[str] | None:
    """``classes.txt``: one class name per line, line ``i`` naming mask value ``i`` (blank lines skipped)."""
    if not path.is_file():
        return None
    names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise UserError(f"{path} lists no classes; write one class name per line (line i = mask value i)")
    return names


#: PIL modes of single-channel index images
INDEX_MODES = ("1", "L", "P", "I;16", "I")


def not_an_index_mask(path: Path, mode: str) -> UserError:
    return UserError(f"mask {path} is a {mode} image; masks are single-channel index PNGs (mode L or P), "
                     "one class index per pixel")


def check_masks(records: list[dict[str, Any]]) -> None:
    """Every mask is an index image of its image's size (only the file headers are read: cheap)."""
    for rec in records:
        with Image.open(rec["mask"]) as m, Image.open(rec["image"]) as im:
            if m.mode not in INDEX_MODES:
                raise not_an_index_mask(rec["mask"], m.mode)
            if m.size != im.size:
                raise UserError(f"mask {rec['mask']} is {m.size[0]}x{m.size[1]} but its image {rec['image']} is "
                                f"{im.size[0]}x{im.size[1]}; masks must match their images pixel for pixel")


def read_voc(root: Path, train_split: str, val_split: str, split: str) -> Samples:
    """Pascal VOC: ids from ``ImageSets/Segmentation/<split>.txt``, palette PNGs in ``SegmentationClass/``."""
    base = voc_root(root)
    if base is None:
        raise UserError(f"data.root={root} holds no Pascal VOC tree; it needs {', '.join(VOC_FOLDERS)} "
                        "(in data.root, data.root/VOC2012 or data.root/VOCdevkit/VOC2012)")

    def records(name: str) -> list[dict[str, Any]]:
        listing = base / "ImageSets" / "Segmentation" / f"{name}.txt"
        if not listing.is_file():
            present = ", ".join(sorted(p.stem for p in listing.parent.glob("*.txt")))
            raise UserError(f"{listing} does not exist; set data.train_split/data.val_split to one of: {present}")
        out = []
        for stem in (line.split()[0] for line in listing.read_text().splitlines() if line.strip()):
            image = first_existing(base / "JPEGImages", stem)
            mask = base / "SegmentationClass" / f"{stem}.png"
            if image is None or not mask.is_file():
                missing = mask if image is not None else base / "JPEGImages" / f"{stem}.jpg"
                raise UserError(f"{missing} (listed in {listing.name}) does not exist; fix the list or the folder")
            out.append({"image": image, "mask": mask})
        return out

    classes = read_classes(base / "classes.txt") or read_classes(root / "classes.txt") or list(VOC_CLASSES)
    train = records(train_split) if split == "train" else []
    val = records(val_split)
    check_masks(train + val)
    return Samples(train, val, classes, {"root": str(base)})


def first_existing(folder: Path, stem: str) -> Path | None:
    """The image file ``folder/stem.<ext>`` for the first known image suffix that exists."""
    return next((folder / f"{stem}{s}" for s in (*IMAGE_SUFFIXES, *(x.upper() for x in IMAGE_SUFFIXES))
                 if (folder / f"{stem}{s}").is_file()), None)


def _pairs(folder: Path) -> list[dict[str, Any]]:
    images = sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise UserError(f"{folder / 'images'} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    out = []
    for image in images:
        mask = folder / "masks" / f"{image.stem}.png"
        if not mask.is_file():
            raise UserError(f"image {image} has no mask {mask}; every image needs an index PNG of the same stem")
        out.append({"image": image, "mask": mask})
    return out


def max_index(records: list[dict[str, Any]], ignore_index: int) -> int:
    """The largest class index in the masks (ignoring ``ignore_index``): reads every mask once."""
    from tqdm import tqdm

    top = 0
    for rec in tqdm(records, desc="counting classes in the masks", file=sys.stderr, leave=False,
                    disable=len(records) < 500):
        values = np.unique(np.asarray(Image.open(rec["mask"])))
        values = values[values != ignore_index]
        top = max(top, int(values.max()) if values.size else 0)
    return top


def read_paired(root: Path, val_fraction: float, num_classes: int, ignore_index: int, split: str) -> Samples:
    """``images/`` + ``masks/`` (index PNGs of the same stems), split in ``train/`` + ``val/`` or held out.

    Without ``train/`` and ``val/`` a fixed ``val_fraction`` of the sorted stems (a seed-0
    permutation, whatever the run's seed) is the validation set, so runs of different seeds
    are scored on the same images. Class names come from ``classes.txt``, else
    ``data.num_classes``, else the largest index in the masks.
    """
    dirs = paired_dirs(root)
    if dirs is None:
        raise UserError(f"data.root={root} holds no paired folder; it needs images/ + masks/ (or train/ and val/ "
                        "with both)")
    if len(dirs) == 2:
        train, val = _pairs(dirs[0]) if split == "train" else [], _pairs(dirs[1])
    else:
        every = _pairs(dirs[0])
        if not 0 < val_fraction < 1:
            raise UserError(f"data.val_fraction={val_fraction} must be in (0, 1) to hold out validation images")
        order = np.random.default_rng(0).permutation(len(every))
        cut = max(1, round(val_fraction * len(every)))
        if cut >= len(every):
            raise UserError(f"{dirs[0]} has {len(every)} images; too few to hold out a validation set")
        val = [every[i] for i in sorted(order[:cut])]
        train = [every[i] for i in sorted(order[cut:])] if split == "train" else []
    check_masks(train + val)
    classes = read_classes(root / "classes.txt")
    if classes is None:
        n = num_classes or max_index(train + val, ignore_index) + 1
        classes = ["background", *(f"class{i}" for i in range(1, n))]
    elif num_classes and num_classes != len(classes):
        raise UserError(f"data.num_classes={num_classes} but {root / 'classes.txt'} lists {len(classes)} classes; "
                        "drop one of them")
    return Samples(train, val, classes)


def read_coco(root: Path, split: str) -> Samples:
    """COCO instance json (labels 1..K, 0 = background) or panoptic json (labels 0..K-1, void ignored)."""
    train, val, classes, kind = coco.read_coco(root, split)
    return Samples(train, val, classes, {"coco": kind})
