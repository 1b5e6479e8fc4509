"""COCO mAP (torchmetrics' ``MeanAveragePrecision``, pycocotools backend) and a detections PNG."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.detection import MeanAveragePrecision

KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100")


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, info: dict[str, Any],
             run_dir: Path | None = None) -> dict[str, float]:
    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools", sync_on_compute=False)
    shown: list[tuple[torch.Tensor, dict]] = []
    for images, targets in loader:
        outputs = model([im.to(device) for im in images])
        preds = [{k: v.float().cpu() if k != "labels" else v.cpu() for k, v in o.items()} for o in outputs]
        metric.update(preds, [{"boxes": t["boxes"], "labels": t["labels"]} for t in targets])
        if len(shown) < 8:
            shown += list(zip(images, preds))[: 8 - len(shown)]
    with contextlib.redirect_stdout(sys.stderr):  # pycocotools prints its summary
        result = metric.compute()
    if run_dir is not None and shown:
        from .predict import draw

        draw_grid([draw(im, p, info["classes"], threshold=0.3) for im, p in shown], Path(run_dir) / "detections.png")
    return {k: float(result[k]) for k in KEYS}


def draw_grid(tiles: list[torch.Tensor], path: Path, columns: int = 4) -> Path:
    """Save uint8 tiles as one PNG; tiles of different sizes (user images) are padded to the largest."""
    from torchvision.utils import make_grid, save_image

    height, width = max(t.shape[1] for t in tiles), max(t.shape[2] for t in tiles)
    padded = [torch.nn.functional.pad(t.float() / 255, (0, width - t.shape[2], 0, height - t.shape[1]))
              for t in tiles]
    save_image(make_grid(padded, nrow=columns, padding=2), str(path))
    return path
