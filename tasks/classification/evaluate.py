"""Top-1, top-5, loss (torchmetrics) and a confusion-matrix PNG; `rsuite evaluate` calls this."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, info: dict[str, Any], cfg: Any,
             run_dir: Path | None = None) -> dict[str, float]:
    k = info["num_classes"]
    # The engine evaluates the whole validation set on rank 0, so metrics must not sync.
    local = {"sync_on_compute": False}
    top1 = MulticlassAccuracy(k, top_k=1, average="micro", **local).to(device)
    top5 = MulticlassAccuracy(k, top_k=min(5, k), average="micro", **local).to(device)
    confusion = MulticlassConfusionMatrix(k, **local).to(device)
    total_loss, count = 0.0, 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        logits = model(images).float()
        total_loss += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
        count += len(labels)
        top1.update(logits, labels)
        top5.update(logits, labels)
        confusion.update(logits, labels)
    if run_dir is not None:
        plot_confusion(confusion.compute().cpu(), info["classes"], Path(run_dir) / "confusion.png")
    return {"top1": float(top1.compute()), "top5": float(top5.compute()), "loss": total_loss / max(1, count),
            "samples": count}


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
