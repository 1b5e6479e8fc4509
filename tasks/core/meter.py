"""Training-log accounting without per-step host syncs: a window of device-side sums.

Each step adds its loss and the task's logged scalars as device tensors (no ``float()``, so
the CPU never waits for the GPU); every ``trainer.log_every`` steps the window is summed over
all ranks in one collective and read once. The logged loss is then the mean over every rank's
samples, and a non-finite loss is seen by all ranks at the same step, so all of them stop
instead of leaving the others waiting in an all-reduce. The rate is counted over the window's
training time only (evaluations and checkpoints excluded), not averaged since the start.
"""

from __future__ import annotations

import math
import time
from typing import Any

import torch

from . import distributed


class LogWindow:
    """Sums of loss, logged scalars, samples, training seconds and loader waits since the last read."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.samples = 0
        self.seconds = 0.0
        self.waited = 0.0
        self.started = time.perf_counter()

    def add(self, loss: torch.Tensor, logs: dict[str, Any], samples: int, waited: float) -> None:
        """One step: ``loss`` and ``logs`` stay on the device; ``waited`` is the seconds spent on the next batch."""
        for key, value in (("loss", loss), *logs.items()):
            value = value.detach() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
            value = value.to(self.device, torch.float32, non_blocking=True)
            self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()
        self.steps += 1
        self.samples += samples
        self.waited += waited

    def pause(self) -> None:
        """Stop the clock (evaluation, checkpoint); :meth:`resume` restarts it."""
        self.seconds += time.perf_counter() - self.started

    def resume(self) -> None:
        self.started = time.perf_counter()

    def _reduced(self) -> dict[str, float]:
        """Means over the window and over all ranks: one all-reduce, one device-to-host read."""
        keys = sorted(self.sums)
        if not keys:
            return {}
        packed = torch.stack([self.sums[k] for k in keys] + [torch.tensor(float(self.steps), device=self.device)])
        values = distributed.all_reduce_sum(packed).tolist()
        steps = max(1.0, values[-1])
        return {k: v / steps for k, v in zip(keys, values[:-1])}

    def read(self, world_size: int = 1) -> dict[str, float]:
        """The window's record (``train/loss``, ``train/<log>``, ``samples_per_s``, ``loader_wait``); resets it."""
        means = self._reduced()
        seconds = self.seconds + (time.perf_counter() - self.started)
        record = {"train/loss": means.pop("loss", math.nan), **{f"train/{k}": v for k, v in means.items()},
                  "samples_per_s": self.samples * world_size / max(1e-9, seconds),
                  "loader_wait": self.waited / max(1e-9, seconds)}
        self.reset()
        return record

    def loss_is_finite(self) -> bool:
        """Whether every rank's loss stayed finite in this window (read without resetting; a collective)."""
        if "loss" not in self.sums:
            return True
        total = distributed.all_reduce_sum(self.sums["loss"].detach().clone().reshape(1))
        return bool(torch.isfinite(total).all())
