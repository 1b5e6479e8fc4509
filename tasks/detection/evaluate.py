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

from .draw import draw, draw_grid

KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100")


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, info: dict[str, Any], cfg: Any,
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
        draw_grid([draw(im, p, info["classes"], threshold=0.3) for im, p in shown], Path(run_dir) / "detections.png")
    return {k: float(result[k]) for k in KEYS}
