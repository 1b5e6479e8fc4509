"""mIoU (headline), pixel accuracy, Dice, loss and per-class IoU (torchmetrics); overlay and IoU plots.

A class that occurs in neither the prediction nor the ground truth of the validation set has
no IoU (``None`` in ``per_class_iou``) and does not enter the means, as in the VOC and
Cityscapes benchmarks. Padding and the ignore index count nowhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score, MulticlassJaccardIndex

from tasks.core import distributed

from .draw import denormalize, save_grid
from .model import build_loss

GRID_ROWS = 6  # validation images in overlays.png


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, info: dict[str, Any], cfg: Any,
             run_dir: Path | None = None) -> dict[str, Any]:
    """The metrics over ``loader``; under DDP over every rank's shard (the torchmetrics states and the
    loss sum are reduced across processes, a no-op in one). Pictures go to ``run_dir`` when given."""
    k, ignore = info["num_classes"], cfg.data.ignore_index
    iou = MulticlassJaccardIndex(k, average="none", ignore_index=ignore, zero_division=float("nan")).to(device)
    f1 = MulticlassF1Score(k, average="none", ignore_index=ignore).to(device)
    accuracy = MulticlassAccuracy(k, average="micro", ignore_index=ignore).to(device)
    criterion = build_loss(cfg.model.loss, ignore)
    total = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum over images, images
    rows: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
    for images, masks in loader:
        images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
        logits = model(images).float()
        total[0] += criterion(logits, masks)[0].double() * len(images)
        total[1] += len(images)
        pred = logits.argmax(1)
        for metric in (iou, f1, accuracy):
            metric.update(pred, masks)
        if run_dir is not None and len(rows) < GRID_ROWS:
            rows += [_row(x, p, m, info, ignore) for x, p, m in zip(images, pred, masks)][: GRID_ROWS - len(rows)]
    loss_sum, images_seen = distributed.all_reduce_sum(total).tolist()
    per_class = iou.compute().cpu()
    present = ~per_class.isnan()
    dice = f1.compute().cpu()[present]
    names = info["classes"]
    metrics = {"miou": float(per_class[present].mean()) if present.any() else 0.0,
               "pixel_acc": float(accuracy.compute()), "dice": float(dice.mean()) if present.any() else 0.0,
               "loss": loss_sum / max(1.0, images_seen), "images": int(images_seen),
               "per_class_iou": {n: (round(float(v), 6) if ok else None)
                                 for n, v, ok in zip(names, per_class, present)}}
    if run_dir is not None:
        save_grid(rows, names, Path(run_dir) / "overlays.png")
        plot_class_iou(metrics["per_class_iou"], metrics["miou"], Path(run_dir) / "class_iou.png")
    return metrics


def _row(image: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor, info: dict[str, Any],
         ignore: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One grid row, cropped to the labelled extent (the batch's padding is all ignore index)."""
    labelled = (mask != ignore).nonzero()
    h, w = (int(labelled[:, 0].max()) + 1, int(labelled[:, 1].max()) + 1) if len(labelled) else mask.shape
    return denormalize(image[:, :h, :w], info["mean"], info["std"]), pred[:h, :w].cpu(), mask[:h, :w].cpu()


def plot_class_iou(per_class: dict[str, float | None], miou: float, path: Path) -> Path:
    """Horizontal bars of each class's IoU, the mIoU as a line; absent classes marked n/a."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(per_class)
    values = [v if v is not None else 0.0 for v in per_class.values()]
    fig, ax = plt.subplots(figsize=(6.5, 0.9 + 0.28 * len(names)))
    bars = ax.barh(range(len(names)), values, color="tab:blue")
    for bar, v in zip(bars, per_class.values()):
        ax.text(bar.get_width() + 0.01, bar.get_y() + bar.get_height() / 2, "n/a" if v is None else f"{v:.2f}",
                va="center", fontsize=7)
    ax.axvline(miou, color="tab:red", linestyle="--", label=f"mIoU {miou:.3f}")
    ax.set_yticks(range(len(names)), names, fontsize=7 if len(names) > 25 else 8)
    ax.invert_yaxis()
    ax.set(xlim=(0, 1.08), xlabel="IoU", title="per-class IoU (validation)")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
