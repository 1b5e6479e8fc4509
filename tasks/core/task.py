"""What a supervised task plugs into the engine: data, model, loss, metrics.

The task says *what* is learned; :mod:`tasks.core.engine` says *how* training runs (device,
precision, DDP, schedule, checkpoints, logging). A task never re-implements those.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@dataclass
class DataBundle:
    """Train and validation datasets plus what the model needs to know about them."""

    train: Dataset
    val: Dataset
    info: dict[str, Any] = field(default_factory=dict)  # e.g. num_classes, in_channels, classes
    collate_fn: Any = None


class SupervisedTask:
    """Base class of a task plugin; subclasses fill the class attributes and five methods."""

    name: ClassVar[str]
    config_class: ClassVar[type]
    default_recipe: ClassVar[str]  # file name under configs/<name>/
    headline: ClassVar[str]  # metric that picks best.pt, e.g. "top1"
    higher_is_better: ClassVar[bool] = True
    image_model: ClassVar[bool] = True  # 2-D conv model: channels-last on CUDA
    #: named CPU budgets (overrides of the default recipe) for `make demo` and `rsuite experiment sweep`;
    #: "small" also fixes the backbone whose residual/plain twins the sweep compares
    budgets: ClassVar[dict[str, list[str]]] = {}

    def default_config_path(self) -> Path:
        return CONFIGS / self.name / self.default_recipe

    def build_data(self, cfg: Any, split: str = "train") -> DataBundle:
        """Datasets for ``cfg``; ``split="val"`` may skip building the training set."""
        raise NotImplementedError

    def build_model(self, cfg: Any, info: dict[str, Any]) -> nn.Module:
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss of one (device-placed) batch and scalars worth logging."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, loader: DataLoader, device: torch.device,
                 info: dict[str, Any], run_dir: Path | None = None) -> dict[str, float]:
        """Metrics over ``loader`` under the task's fixed names; may write plots to ``run_dir``."""
        raise NotImplementedError

    def batch_sampler(self, cfg: Any, dataset: Dataset, batch_size: int, rank: int,
                      world_size: int) -> Sampler[list[int]] | None:
        """Training batches of one rank when the task groups them (similar lengths, aspect ratios).

        ``None`` (the default) means the engine's shuffled batches. A returned sampler yields
        lists of indices and offers ``set_epoch(epoch, start_batch)`` and ``batches_per_epoch()``
        with an order fixed by ``(seed, epoch)``, so resumed runs see the same batches
        (see :class:`tasks.core.loader.GroupedBatchSampler`).
        """
        return None

    # ------------------------------------------------ entry points (CLI, demo)
    def train(self, argv: list[str]) -> Path:
        """``rsuite train <task> ...``: tasks with their own loop (e.g. RL) override this."""
        from .run import train_main

        return train_main(self, argv)

    def evaluate_run(self, run_dir: Path, device: str = "auto") -> dict[str, Any]:
        """``rsuite evaluate RUN_DIR``: metrics of the run's best checkpoint (writes eval.json)."""
        from .run import evaluate_run

        return evaluate_run(self, run_dir, device)

    def batch_size(self, batch: Any) -> int:
        first = batch[0] if isinstance(batch, (list, tuple)) else batch
        return len(first)

    def to_device(self, batch: Any, device: torch.device) -> Any:
        if isinstance(batch, torch.Tensor):
            return batch.to(device, non_blocking=True)
        if isinstance(batch, (list, tuple)):
            return type(batch)(self.to_device(b, device) for b in batch)
        if isinstance(batch, dict):
            return {k: self.to_device(v, device) for k, v in batch.items()}
        return batch
