"""Colours and pictures of masks: the VOC palette, overlays, and the evaluation's picture grid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.utils import draw_segmentation_masks, make_grid, save_image


def palette() -> list[tuple[int, int, int]]:
    """Pascal VOC's 256-entry colour map (class 0 black, 255 the cream of VOC's object borders)."""
    colours = []
    for index in range(256):
        r = g = b = 0
        c = index
        for bit in range(8):
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        colours.append((r, g, b))
    return colours


def save_index_mask(mask: np.ndarray, path: Path) -> Path:
    """A palette PNG: pixel values are the class indices (tools read them as such), colours the VOC map."""
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    image.putpalette([v for rgb in palette() for v in rgb])
    image.save(path)
    return path


def overlay(image: torch.Tensor, mask: torch.Tensor, classes: list[str], alpha: float = 0.55) -> torch.Tensor:
    """uint8 ``3xHxW`` image with each class's pixels tinted in its palette colour.

    A class named ``background`` (index 0) and pixels outside ``0..K-1`` (the ignore index)
    stay untinted.
    """
    colours = palette()
    shown = [k for k in range(len(classes)) if not (k == 0 and classes[0].lower() == "background")]
    present = [k for k in shown if bool((mask == k).any())]
    if not present:
        return image
    masks = torch.stack([mask == k for k in present])
    return draw_segmentation_masks(image, masks, alpha=alpha, colors=[colours[k] for k in present])


def denormalize(x: torch.Tensor, mean: list[float], std: list[float]) -> torch.Tensor:
    """Normalised float ``3xHxW`` -> uint8 image."""
    x = x.cpu() * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8)


def save_grid(rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]], classes: list[str], path: Path) -> Path:
    """One row per image: the image | the prediction | the ground truth (uint8 images, index masks).

    Images are cropped to their labelled extent (batches are padded) and padded to a common
    size; small images are shown at 2x so the classes stay visible.
    """
    tiles = []
    for image, pred, truth in rows:
        tiles += [image, overlay(image, pred, classes), overlay(image, truth, classes)]
    h, w = max(t.shape[1] for t in tiles), max(t.shape[2] for t in tiles)
    canvas = torch.zeros(len(tiles), 3, h, w, dtype=torch.uint8)
    for k, t in enumerate(tiles):
        canvas[k, :, : t.shape[1], : t.shape[2]] = t
    grid = make_grid(canvas, nrow=3, padding=2, pad_value=255).float() / 255
    if max(h, w) < 200:
        grid = torch.nn.functional.interpolate(grid[None], scale_factor=2, mode="nearest")[0]
    save_image(grid, str(path))
    return path
