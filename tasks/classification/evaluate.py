"""Top-1, top-5, loss (torchmetrics) and a confusion-matrix PNG; `rsuite evaluate` calls this."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from tasks.core import distributed


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, info: dict[str, Any], cfg: Any,
             run_dir: Path | None = None) -> dict[str, float]:
    """Top-1, top-5, mean loss and sample count over ``loader``; under DDP over every rank's shard.

    The torchmetrics states sync across processes at ``compute`` (a no-op in one process); the
    loss is summed in float64 and all-reduced, so sharded and single-process numbers agree.
    """
    k = info["num_classes"]
    top1 = MulticlassAccuracy(k, top_k=1, average="micro").to(device)
    top5 = MulticlassAccuracy(k, top_k=min(5, k), average="micro").to(device)
    confusion = MulticlassConfusionMatrix(k).to(device)
    total = torch.zeros(2, dtype=torch.float64, device=device)  # loss sum, samples
    for images, labels in loader:
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        logits = model(images).float()
        total[0] += nn.functional.cross_entropy(logits, labels, reduction="sum").double()
        total[1] += len(labels)
        top1.update(logits, labels)
        top5.update(logits, labels)
        confusion.update(logits, labels)
    loss_sum, count = distributed.all_reduce_sum(total).tolist()
    matrix = confusion.compute().cpu()
    if run_dir is not None:
        plot_confusion(matrix, info["classes"], Path(run_dir) / "confusion.png")
    return {"top1": float(top1.compute()), "top5": float(top5.compute()), "loss": loss_sum / max(1.0, count),
            "samples": int(count)}


def plot_confusion(matrix: torch.Tensor, classes: list[str], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rates = matrix.float() / matrix.sum(1, keepdim=True).clamp_min(1)
    n = len(classes)
    fig, ax = plt.subplots(figsize=(1.0 + 0.55 * n, 0.8 + 0.5 * n))
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    if n <= 30:
        ax.set_xticks(range(n), classes, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(n), classes, fontsize=8)
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, int(matrix[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if rates[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (validation)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
