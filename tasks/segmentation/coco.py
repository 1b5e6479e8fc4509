"""COCO annotations as semantic masks: instance json (polygons, RLE, crowd) and panoptic PNGs.

Records keep the annotations; masks are painted with ``pycocotools.mask`` when a sample is
read (:func:`paint_instances`, :func:`read_panoptic`), so a large json costs no pass over
the images up front.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tasks.core.errors import UserError
from tasks.core.layouts import first_match


def coco_files(root: Path) -> list[tuple[Path, Path]] | None:
    """``[(train json, train images), (val json, val images)]`` for COCO instance or panoptic layouts.

    The per-split layout (``{train,val}/annotations.json`` + ``images/``) or the official tree
    (``annotations/{instances,panoptic}_{train,val}<year>.json`` + ``<split><year>/`` or
    ``images/<split><year>/``); ``None`` when neither is there.
    """
    per_split = [(root / s / "annotations.json", root / s / "images") for s in ("train", "val")]
    if all(a.is_file() for a, _ in per_split):
        return per_split
    found = []
    for split in ("train", "val"):
        ann = first_match(root / "annotations", [f"instances_{split}*.json", f"panoptic_{split}*.json"])
        if ann is None:
            return None
        name = ann.stem.split("_", 1)[1]  # instances_train2017 -> train2017
        images = next((root / d for d in (name, f"images/{name}") if (root / d).is_dir()), root / name)
        found.append((ann, images))
    return found


def _load_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"{path} is not a readable COCO json ({type(err).__name__}: {err})") from None
    if not isinstance(doc, dict) or "images" not in doc or "categories" not in doc:
        raise UserError(f"{path} is not a COCO json (it needs images, annotations and categories)")
    return doc


def _is_panoptic(doc: dict[str, Any]) -> bool:
    anns = doc.get("annotations") or []
    return bool(anns) and "segments_info" in anns[0]


def _image_file(images_dir: Path, name: str, ann_file: Path) -> Path:
    path = images_dir / name
    if not path.is_file():
        raise UserError(f"image file {path} (listed in {ann_file.name}) does not exist; fix the path or the json")
    return path


def _coco_instances(doc: dict[str, Any], ann_file: Path, images_dir: Path,
                    label_of: dict[int, int]) -> tuple[list[dict], int]:
    """Records with their instance annotations; also how many annotations had no mask to paint."""
    from pycocotools.coco import COCO

    coco = COCO()  # indexed from the json already read, not parsed a second time
    coco.dataset = doc
    with contextlib.redirect_stdout(sys.stderr):  # pycocotools prints progress to stdout
        coco.createIndex()
    records, no_mask = [], 0
    for img in coco.loadImgs(sorted(coco.getImgIds())):
        anns = []
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            if not ann.get("segmentation") or ann["category_id"] not in label_of:
                no_mask += 1
                continue
            anns.append({"segmentation": ann["segmentation"], "label": label_of[ann["category_id"]],
                         "iscrowd": int(ann.get("iscrowd", 0))})
        records.append({"image": _image_file(images_dir, img["file_name"], ann_file), "width": img["width"],
                        "height": img["height"], "anns": anns})
    return records, no_mask


def _coco_panoptic(doc: dict[str, Any], ann_file: Path, images_dir: Path, label_of: dict[int, int]) -> list[dict]:
    png_dir = next((d for d in (ann_file.with_suffix(""), ann_file.parent / "panoptic") if d.is_dir()), None)
    if png_dir is None:
        raise UserError(f"the panoptic PNGs of {ann_file} are missing; put them in {ann_file.with_suffix('')}/")
    files = {img["id"]: img["file_name"] for img in doc["images"]}
    records = []
    for ann in sorted(doc["annotations"], key=lambda a: a["image_id"]):
        segments = {int(s["id"]): label_of[s["category_id"]] for s in ann["segments_info"]
                    if s["category_id"] in label_of}
        records.append({"image": _image_file(images_dir, files[ann["image_id"]], ann_file),
                        "panoptic": png_dir / ann["file_name"],
                        "segments": segments})
    return records


def read_coco(root: Path, split: str) -> tuple[list[dict], list[dict], list[str], str]:
    """Train and val records, class names and the json's kind (``instances`` or ``panoptic``).

    Instance json: labels 1..K, 0 = background. Panoptic json: labels 0..K-1 (every pixel has a
    class), void ignored. ``split="val"`` reads only the validation json.
    """
    files = coco_files(root)
    if files is None:
        raise UserError(f"data.root={root} holds no COCO layout; it needs train/ and val/ (images/ + "
                        "annotations.json) or annotations/{instances,panoptic}_{train,val}*.json")
    docs = {path: _load_json(path) for path, _ in (files if split == "train" else files[1:])}
    val_doc = docs[files[1][0]]
    categories = sorted(val_doc["categories"], key=lambda c: c["id"])
    panoptic = _is_panoptic(val_doc)
    offset = 0 if panoptic else 1  # instances: 0 is the background; panoptic labels every pixel
    label_of = {c["id"]: k + offset for k, c in enumerate(categories)}
    classes = ([] if panoptic else ["background"]) + [c["name"] for c in categories]
    splits: list[list[dict]] = []
    dropped = 0
    for ann_file, images_dir in files:
        if ann_file not in docs:
            splits.append([])
            continue
        if panoptic:
            splits.append(_coco_panoptic(docs[ann_file], ann_file, images_dir, label_of))
        else:
            records, no_mask = _coco_instances(docs[ann_file], ann_file, images_dir, label_of)
            splits.append(records)
            dropped += no_mask
    if dropped:
        print(f"warning: {dropped} COCO annotations have no segmentation or an unknown category; not painted",
              file=sys.stderr)
    return splits[0], splits[1], classes, "panoptic" if panoptic else "instances"


def paint_instances(rec: dict[str, Any], ignore_index: int) -> np.ndarray:
    """The semantic mask of COCO instance annotations (uint8 ``H x W``).

    As torchvision's segmentation reference does for COCO: each pixel gets the label of the
    instance covering it, pixels two instances of different classes claim are ignored, and so
    are crowd regions (their outlines are coarse).
    """
    from pycocotools import mask as mask_utils

    h, w = rec["height"], rec["width"]
    out = np.zeros((h, w), np.uint8)
    claimed = np.zeros((h, w), np.int64)  # label + 1 of the first claim; -1 after a conflict
    crowd = np.zeros((h, w), bool)
    for ann in rec["anns"]:
        segm = ann["segmentation"]
        if isinstance(segm, list):  # polygons
            rle = mask_utils.merge(mask_utils.frPyObjects(segm, h, w))
        elif isinstance(segm.get("counts"), list):  # uncompressed RLE
            rle = mask_utils.frPyObjects(segm, h, w)
        else:
            rle = segm
        m = mask_utils.decode(rle).astype(bool)
        if ann["iscrowd"]:
            crowd |= m
            continue
        label = ann["label"] + 1
        conflict = m & (claimed != 0) & (claimed != label)
        claimed[m & (claimed == 0)] = label
        claimed[conflict] = -1
    out[claimed > 0] = (claimed[claimed > 0] - 1).astype(np.uint8)
    out[(claimed < 0) | crowd] = ignore_index
    return out


def read_panoptic(rec: dict[str, Any], ignore_index: int) -> np.ndarray:
    """The semantic mask of a COCO panoptic PNG: segment id ``R + 256 G + 256^2 B`` -> its label; void ignored."""
    rgb = np.asarray(Image.open(rec["panoptic"]).convert("RGB"), np.uint32)
    ids = rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]
    out = np.full(ids.shape, ignore_index, np.uint8)
    for segment, label in rec["segments"].items():
        out[ids == segment] = label
    return out
