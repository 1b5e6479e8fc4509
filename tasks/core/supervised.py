"""What a supervised task plugs into the engine: data, model, loss, batch evaluation.

The task says *what* is learned; :mod:`tasks.core.engine` says *how* training runs (device,
precision, DDP, schedule, checkpoints, logging). A task never re-implements those. Every hook
receives the resolved config, so nothing travels on model attributes or in ``data_info``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler

from .task import Task

if TYPE_CHECKING:
    from .engine import Trainer
    from .lifecycle import RunFolder


@dataclass
class DataBundle:
    """Train and validation datasets plus what the model needs to know about them."""

    train: Dataset
    val: Dataset
    info: dict[str, Any] = field(default_factory=dict)  # e.g. num_classes, in_channels, classes
    collate_fn: Any = None


class SupervisedTask(Task):
    """A task trained from batches by :class:`tasks.core.engine.Trainer`; subclasses fill four hooks."""

    image_model: ClassVar[bool] = True  # 2-D conv model: channels-last on CUDA

    def build_data(self, cfg: Any, split: str = "train") -> DataBundle:
        """Datasets for ``cfg``; ``split="val"`` may skip building the training set."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any, cfg: Any) -> tuple[torch.Tensor, dict[str, float]]:
        """Training loss of one (device-placed) batch and scalars worth logging."""
        raise NotImplementedError

    def evaluate(self, model: nn.Module, loader: DataLoader, device: torch.device, info: dict[str, Any],
                 cfg: Any, run_dir: Path | None = None) -> dict[str, float]:
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

    # ------------------------------------------------ the lifecycle's hooks
    def make_trainer(self, cfg: Any, run: RunFolder) -> Trainer:
        from .engine import Trainer

        return Trainer(self, cfg, run)

    def final_metrics(self, cfg: Any, model: nn.Module, info: dict[str, Any], run_dir: Path,
                      device: torch.device) -> dict[str, Any]:
        """The validation metrics of ``model`` over the run's whole validation set."""
        from .loader import make_loader

        data = self.build_data(cfg, split="val")
        loader = make_loader(data.val, cfg.data.batch_size, collate_fn=data.collate_fn, seed=cfg.seed)
        started = time.perf_counter()
        with torch.no_grad():
            metrics = self.evaluate(model.to(device), loader, device, info, cfg, run_dir)
        return {**metrics, "eval_seconds": round(time.perf_counter() - started, 3)}
