"""Generated scenes: cluttered images composed from real objects, written as COCO.

Fashion-MNIST items (scikit-learn digits when the Debian package is missing) are tinted and
pasted at several scales onto real textures (scikit-image's brick, grass and gravel
photographs), later items occluding earlier ones. Boxes come from each item's *visible*
pixel extent and instance masks are RLE-encoded with ``pycocotools.mask``, so the data goes
through exactly the COCO code path users' own datasets take. Generation is deterministic
for a seed; the result is cached under a key of its parameters.

Shared by the tasks whose embedded default these scenes are: detection reads the boxes,
segmentation paints the instance masks into semantic masks. Each task keeps its copy under
its own cache folder (``cache_dir(<task>)``), so the tasks never depend on each other.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from .cache import cache_dir
from .idx import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, fashion_mnist_available, load_idx_split

VERSION = 1
#: the settings a task's ``data`` section holds for the generator (names and meaning shared by every task)
SCENE_KEYS = ("num_train", "num_val", "image_size", "min_objects", "max_objects", "min_object_size", "max_object_size")


class SceneSettings(Protocol):
    """What the generator reads from a task's ``data`` config (any object with these attributes)."""

    num_train: int
    num_val: int
    image_size: int
    min_objects: int
    max_objects: int
    min_object_size: int
    max_object_size: int


def _objects(train: bool) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    """Object crops (N, h, w) uint8, labels, class names and the source's name."""
    if fashion_mnist_available():
        images, labels = load_idx_split(FASHION_MNIST_DIR, train)
        return images, labels, list(FASHION_MNIST_CLASSES), "fashion_mnist"
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images * (255 / 16)).astype(np.uint8)
    half = len(images) * 4 // 5
    keep = slice(0, half) if train else slice(half, None)
    return images[keep], d.target[keep].astype(np.int64), [str(i) for i in range(10)], "digits"


def _textures() -> list[np.ndarray]:
    from skimage import data

    return [data.brick(), data.grass(), data.gravel()]


def _background(rng: np.random.Generator, textures: list[np.ndarray], size: int) -> np.ndarray:
    tex = textures[rng.integers(len(textures))]
    y, x = rng.integers(0, tex.shape[0] - size), rng.integers(0, tex.shape[1] - size)
    patch = tex[y:y + size, x:x + size].astype(np.float32) / 255.0
    tint = rng.uniform(0.25, 0.85, 3)
    return (0.15 + 0.7 * patch[..., None]) * tint


def compose_scene(rng: np.random.Generator, objects: np.ndarray, labels: np.ndarray, textures: list[np.ndarray],
                  cfg: SceneSettings) -> tuple[np.ndarray, list[dict]]:
    """One RGB uint8 scene and its instances (category index, visible mask)."""
    size = cfg.image_size
    canvas = _background(rng, textures, size)
    placed: list[tuple[int, np.ndarray, int]] = []
    for _ in range(rng.integers(cfg.min_objects, cfg.max_objects + 1)):
        idx = int(rng.integers(len(objects)))
        side = int(rng.integers(cfg.min_object_size, cfg.max_object_size + 1))
        item = np.asarray(Image.fromarray(objects[idx]).resize((side, side), Image.BILINEAR), np.float32) / 255.0
        y, x = rng.integers(0, size - side + 1), rng.integers(0, size - side + 1)
        alpha = np.zeros((size, size), np.float32)
        alpha[y:y + side, x:x + side] = item
        color = rng.uniform(0.0, 1.0, 3)
        color[rng.integers(3)] = rng.uniform(0.8, 1.0)  # keep one channel bright: visible on any tint
        canvas = canvas * (1 - alpha[..., None]) + color * alpha[..., None]
        mask = alpha > 0.25
        placed = [(c, m & ~mask, full) for c, m, full in placed]  # the new item occludes
        placed.append((int(labels[idx]), mask, int(mask.sum())))
    instances = [{"category": c, "mask": m} for c, m, full in placed
                 if m.sum() >= 16 and m.sum() >= 0.35 * full]  # drop items hidden behind others
    return (np.clip(canvas, 0, 1) * 255).round().astype(np.uint8), instances


def _annotation(ann_id: int, image_id: int, category_id: int, mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
    rle["counts"] = rle["counts"].decode("ascii")
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": [x, y, w, h],
            "area": float(mask_utils.area(rle)), "iscrowd": 0, "segmentation": rle}


def write_split(out: Path, count: int, seed: int, train: bool, cfg: SceneSettings) -> None:
    """Generate ``count`` scenes into ``out/images`` and ``out/annotations.json``."""
    objects, labels, classes, source = _objects(train)
    textures = _textures()
    rng = np.random.default_rng([seed, 0 if train else 1])
    (out / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for i in range(count):
        scene, instances = compose_scene(rng, objects, labels, textures, cfg)
        name = f"{i:06d}.png"
        Image.fromarray(scene).save(out / "images" / name)
        images.append({"id": i + 1, "file_name": name, "width": cfg.image_size, "height": cfg.image_size})
        for inst in instances:
            annotations.append(_annotation(len(annotations) + 1, i + 1, inst["category"] + 1, inst["mask"]))
    categories = [{"id": k + 1, "name": name} for k, name in enumerate(classes)]
    info = {"description": f"residual-suite scenes from {source}", "version": VERSION}
    (out / "annotations.json").write_text(json.dumps({"info": info, "images": images, "annotations": annotations,
                                                      "categories": categories}))


def scenes_root(cfg: SceneSettings, seed: int, task: str) -> Path:
    """The cached scenes for these settings under ``task``'s cache folder, generated on first use.

    The folder holds ``train/`` and ``val/`` (``images/`` + ``annotations.json``), the per-split
    COCO layout every COCO reader of the suite accepts.
    """
    params = {k: getattr(cfg, k) for k in SCENE_KEYS}
    params.update(seed=seed, version=VERSION, source="fashion_mnist" if fashion_mnist_available() else "digits")
    key = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    root = cache_dir(task) / f"scenes-{key}"
    if (root / "val" / "annotations.json").is_file():
        return root
    print(f"generating {cfg.num_train}+{cfg.num_val} scenes into {root}", file=sys.stderr)
    tmp = root.with_name(f"{root.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write_split(tmp / "train", cfg.num_train, seed, True, cfg)
    write_split(tmp / "val", cfg.num_val, seed, False, cfg)
    (tmp / "params.json").write_text(json.dumps(params, indent=2))
    try:
        os.replace(tmp, root)  # atomic: concurrent generators cannot leave a half-written folder
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process finished first
    return root
