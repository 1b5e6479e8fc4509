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

from tasks.core import distributed

from .draw import draw, draw_grid

KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_100")


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, info: dict[str, Any], cfg: Any,
             run_dir: Path | None = None) -> dict[str, float]:
    """COCO box metrics over ``loader``; under DDP over every rank's shard, evaluated once on rank 0.

    COCO's evaluation needs every detection at once (its precision curves sort them all), so
    the ranks' per-image results are gathered back into dataset order
    (:func:`tasks.core.distributed.gather_batches`): the metrics are exactly those of one
    process, and every rank returns them.
    """
    batches: list[list[tuple[dict, dict]]] = []
    shown: list[tuple[torch.Tensor, dict]] = []
    for images, targets in loader:
        outputs = model([im.to(device, non_blocking=True) for im in images])
        preds = [{k: v.float().cpu() if k != "labels" else v.cpu() for k, v in o.items()} for o in outputs]
        batches.append([(p, {"boxes": t["boxes"], "labels": t["labels"]}) for p, t in zip(preds, targets)])
        if len(shown) < 8:
            shown += list(zip(images, preds))[: 8 - len(shown)]
    everything = distributed.gather_batches(batches)
    result: dict[str, float] | None = None
    if everything is not None:  # rank 0 (or the only process)
        metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools",
                                      sync_on_compute=False)
        if everything:
            preds, targets = zip(*everything)
            metric.update(list(preds), list(targets))
        with contextlib.redirect_stdout(sys.stderr):  # pycocotools prints its summary
            computed = metric.compute()
        result = {k: float(computed[k]) for k in KEYS}
    result = distributed.broadcast(result)
    if run_dir is not None and shown:
        draw_grid([draw(im, p, info["classes"], threshold=0.3) for im, p in shown], Path(run_dir) / "detections.png")
    return result
