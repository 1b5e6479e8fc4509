"""Tiny generated segmentation datasets (VOC layout, paired folders, COCO json) and run settings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.segmentation.draw import palette


def scene(seed: int, width: int = 40, height: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """An RGB image with a red square (class 1) and a blue disc (class 2) on a noisy background."""
    rng = np.random.default_rng(seed)
    image = rng.integers(60, 120, (height, width, 3)).astype(np.uint8)
    mask = np.zeros((height, width), np.uint8)
    s = int(rng.integers(8, 13))
    y, x = int(rng.integers(0, height - s)), int(rng.integers(0, width // 2 - s + 1))
    image[y:y + s, x:x + s] = (220, 30, 30)
    mask[y:y + s, x:x + s] = 1
    cy, cx, r = int(rng.integers(6, height - 6)), int(rng.integers(width // 2 + 5, width - 5)), 5
    yy, xx = np.ogrid[:height, :width]
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    image[disc] = (30, 30, 220)
    mask[disc] = 2
    return image, mask


def save_palette_png(mask: np.ndarray, path: Path) -> None:
    img = Image.fromarray(mask, mode="P")
    img.putpalette([v for rgb in palette() for v in rgb])
    img.save(path)


def write_voc(root: Path, n_train: int = 8, n_val: int = 4) -> Path:
    """A VOC2012-style tree: JPEGImages/*.jpg, SegmentationClass/*.png (palette, 255 borders), ImageSets."""
    base = root / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    ids = {"train": [f"2007_{i:06d}" for i in range(n_train)], "val": [f"2008_{i:06d}" for i in range(n_val)]}
    for split, names in ids.items():
        for k, name in enumerate(names):
            image, mask = scene(k + (0 if split == "train" else 100), 40 + 4 * (k % 3), 32)
            edge = (mask != np.roll(mask, 1, 0)) | (mask != np.roll(mask, 1, 1))
            mask[edge] = 255  # VOC marks object borders "ignore"
            Image.fromarray(image).save(base / "JPEGImages" / f"{name}.jpg", quality=95)
            save_palette_png(mask, base / "SegmentationClass" / f"{name}.png")
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return base


def write_paired(root: Path, n: int = 12, split: bool = True, classes: bool = True) -> Path:
    """images/ + masks/ (mode L index PNGs), in train/ and val/ or one folder; classes.txt optional."""
    folders = [root / "train", root / "val"] if split else [root]
    for f in folders:
        (f / "images").mkdir(parents=True, exist_ok=True)
        (f / "masks").mkdir(parents=True, exist_ok=True)
    for k in range(n):
        folder = folders[1] if split and k >= n - 3 else folders[0]  # the last three validate
        image, mask = scene(k, 36 + 6 * (k % 2), 30 + 4 * (k % 3))
        Image.fromarray(image).save(folder / "images" / f"img{k}.png")
        Image.fromarray(mask, mode="L").save(folder / "masks" / f"img{k}.png")
    if classes:
        (root / "classes.txt").write_text("background\nsquare\ndisc\n")
    return root


def tiny_settings(runs_dir: Path) -> list[str]:
    """Settings for a seconds-long run into ``runs_dir``: a thin resnet18 U-Net, 2 steps, whole-size crops."""
    return ["backbone.name=resnet18", "backbone.options.width=0.25", "model.options.decoder_channels=[32,16,16,8,8]",
            "data.batch_size=4", "data.crop_size=32", "trainer.max_steps=2", "trainer.eval_every=2",
            "trainer.log_every=1", "trainer.progress=false", "trainer.threads=1",
            f"trainer.runs_dir={runs_dir}", "trainer.run_name=r"]


@pytest.fixture
def tiny(tmp_path) -> list[str]:
    """:func:`tiny_settings` into ``tmp_path/runs``."""
    return tiny_settings(tmp_path / "runs")
