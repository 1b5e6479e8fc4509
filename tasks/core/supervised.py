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
    modality: ClassVar[str] = "image"  # what the task feeds its backbone
    #: the model autocasts what tolerates low precision itself (detection: backbone + FPN, so that box
    #: coordinates stay fp32); the engine then runs forward and loss outside autocast
    autocast_in_model: ClassVar[bool] = False
    #: every training batch has one shape (cuDNN autotuning pays off); likewise for evaluation batches
    fixed_train_shapes: ClassVar[bool] = False
    fixed_eval_shapes: ClassVar[bool] = False
    #: ``evaluate`` reduces its metrics over processes, so under DDP each rank scores a shard of the
    #: validation set; otherwise rank 0 scores all of it while the others wait
    sharded_eval: ClassVar[bool] = False
    #: ``torch.compile(dynamic=...)``: ``True`` where input shapes vary every batch (speech frames)
    compile_dynamic: ClassVar[bool | None] = None
    compile_scope: ClassVar[str] = "model"  # what `trainer.compile` compiles (for the start line)

    def check(self, cfg: Any) -> None:
        """The backbone exists, fits the task's modality and takes the given options (nothing is built)."""
        from .backbone import check_backbone

        check_backbone(cfg.backbone, self.modality)

    def build_data(self, cfg: Any, split: str = "train") -> DataBundle:
        """Datasets for ``cfg``; ``split="val"`` may skip building the training set."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any, cfg: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor | float]]:
        """Training loss of one (device-placed) batch and scalars worth logging.

        Logged values stay detached device tensors: the engine averages them over the logging
        window and reads them only every ``trainer.log_every`` steps (``float()`` here would make
        the CPU wait for the GPU every step).
        """
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

    def to_device(self, batch: Any, device: torch.device, channels_last: bool = False) -> Any:
        """``batch`` on ``device`` (asynchronously from pinned memory); with ``channels_last`` the 4-D
        float tensors (image batches) take the layout the model's convolutions were converted to."""
        if isinstance(batch, torch.Tensor):
            if channels_last and batch.dim() == 4 and batch.is_floating_point():
                return batch.to(device, non_blocking=True, memory_format=torch.channels_last)
            return batch.to(device, non_blocking=True)
        if isinstance(batch, (list, tuple)):
            return type(batch)(self.to_device(b, device, channels_last) for b in batch)
        if isinstance(batch, dict):
            return {k: self.to_device(v, device, channels_last) for k, v in batch.items()}
        return batch

    def to_channels_last(self, model: nn.Module) -> nn.Module:
        """Convert the model's 2-D convolutions to channels-last (NHWC), the tensor cores' layout."""
        return model.to(memory_format=torch.channels_last)

    def compile(self, model: nn.Module, train_model: nn.Module, cfg: Any) -> nn.Module:
        """``trainer.compile``: what the engine calls to train. The default compiles the whole
        (DDP-wrapped) ``train_model``; a task may compile a part of ``model`` in place instead."""
        return torch.compile(train_model, dynamic=self.compile_dynamic)

    # ------------------------------------------------ the lifecycle's hooks
    def make_trainer(self, cfg: Any, run: RunFolder) -> Trainer:
        from .engine import Trainer

        return Trainer(self, cfg, run)

    def final_metrics(self, cfg: Any, model: nn.Module, info: dict[str, Any], run_dir: Path | None,
                      device: torch.device) -> dict[str, Any]:
        """The validation metrics of ``model`` over the run's whole validation set (``rsuite evaluate``),
        in the precision the run evaluated in during training (see :func:`tasks.core.evaluation.score`)."""
        from .evaluation import score
        from .loader import make_loader
        from .unreadable import SkipUnreadable

        data = self.build_data(cfg, split="val")
        loader = make_loader(SkipUnreadable(data.val, "validation", cfg.data.strict), cfg.data.batch_size,
                             collate_fn=data.collate_fn, seed=cfg.seed, pin_memory=device.type == "cuda")
        started = time.perf_counter()
        metrics = score(self, model.to(device), loader, device, info, cfg, run_dir)
        return {**metrics, "eval_seconds": round(time.perf_counter() - started, 3)}
