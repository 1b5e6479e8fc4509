"""Scoring a model on validation batches the same way in training and in ``rsuite evaluate``.

Both paths evaluate under the precision the run trained in (``trainer.precision`` on the
device at hand, see :func:`eval_dtype`), in eval mode and without gradients, so the metrics
logged at the last step and those ``rsuite evaluate`` prints agree. Under DDP a task whose
``evaluate`` reduces its metrics (``SupervisedTask.sharded_eval``) is scored on every rank's
shard at once (:func:`tasks.core.loader.shard_loader`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from . import distributed
from .device import autocast, autocast_dtype, cudnn_benchmark
from .errors import UserError

if TYPE_CHECKING:
    from .supervised import SupervisedTask


def eval_dtype(task: SupervisedTask, cfg: Any, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of evaluation: the training precision, or fp32 where the device lacks it
    (a run trained in fp16 on a GPU, evaluated on the CPU)."""
    if task.autocast_in_model:
        return None  # the model autocasts its own parts
    try:
        return autocast_dtype(cfg.trainer.precision, device)
    except UserError:
        return None


def sync_buffers(model: nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm statistics) before a sharded evaluation.

    DDP broadcasts buffers at the start of each forward, but the last training forward then
    updates each rank's statistics from its own batch: without this, ranks would score their
    shards with slightly different models.
    """
    if distributed.active():
        for buffer in model.buffers():
            torch.distributed.broadcast(buffer, src=0)


def score(task: SupervisedTask, model: nn.Module, loader: DataLoader, device: torch.device, info: dict[str, Any],
          cfg: Any, run_dir: Path | None = None) -> dict[str, Any]:
    """``task.evaluate`` over ``loader`` in eval mode, without gradients, in the run's precision."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), autocast(device, eval_dtype(task, cfg, device)), \
                cudnn_benchmark(device.type == "cuda" and task.fixed_eval_shapes):
            return task.evaluate(model, loader, device, info, cfg, run_dir)
    finally:
        model.train(was_training)
