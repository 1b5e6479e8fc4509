"""Detections drawn on images: one image (``rsuite predict``) or a grid (the evaluation's ``detections.png``)."""

from __future__ import annotations

from pathlib import Path

import torch
from torchvision.utils import draw_bounding_boxes, make_grid, save_image


def draw(image: torch.Tensor, pred: dict[str, torch.Tensor], classes: list[str], threshold: float = 0.5,
         scale: int = 0) -> torch.Tensor:
    """uint8 image with the detections above ``threshold``.

    ``scale=0`` upscales small images (longer side under 400 px) 2x so labels stay legible.
    """
    img = (image.clamp(0, 1) * 255).to(torch.uint8) if image.is_floating_point() else image
    scale = scale or (2 if max(img.shape[1:]) < 400 else 1)
    keep = pred["scores"] >= threshold
    boxes = pred["boxes"][keep] * scale
    labels = [f"{classes[int(c)]} {float(s):.2f}" for c, s in zip(pred["labels"][keep], pred["scores"][keep])]
    big = torch.nn.functional.interpolate(img[None].float(), scale_factor=scale, mode="nearest")[0].to(torch.uint8)
    if not len(boxes):
        return big
    return draw_bounding_boxes(big, boxes, labels, colors="red", width=2)


def draw_grid(tiles: list[torch.Tensor], path: Path, columns: int = 4) -> Path:
    """Save uint8 tiles as one PNG; tiles of different sizes (user images) are padded to the largest."""
    height, width = max(t.shape[1] for t in tiles), max(t.shape[2] for t in tiles)
    padded = [torch.nn.functional.pad(t.float() / 255, (0, width - t.shape[2], 0, height - t.shape[1]))
              for t in tiles]
    save_image(make_grid(padded, nrow=columns, padding=2), str(path))
    return path
