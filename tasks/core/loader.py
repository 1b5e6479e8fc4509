"""Data loading the engine controls: resumable, shardable batch sampling and seeded workers.

A training epoch is a list of global batches fixed by ``(seed, epoch)``, so a resumed run can
skip the batches it already consumed and see exactly the samples an uninterrupted run would.
Under DDP each rank takes every ``world_size``-th sample of each global batch, so the ranks'
local batches together are the single-process global batch. Tasks may cut batches their own
way (similar lengths, aspect ratios) by subclassing :class:`EpochBatchSampler`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class EpochBatchSampler(Sampler[list[int]]):
    """Base of the batch samplers a task may hand the engine (``SupervisedTask.batch_sampler``).

    Each epoch starts from a shuffled order of all samples, which a subclass cuts into global
    batches (``global_batches``); each rank takes every ``world_size``-th sample of every
    global batch. The order depends only on ``(seed, epoch)`` and iteration can start at any
    batch, so resumed runs see exactly the batches an uninterrupted run would. An epoch has
    ``length // global batch`` batches.
    """

    def __init__(self, length: int, batch_size: int, *, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.length, self.batch_size = length, batch_size
        self.seed, self.rank, self.world = seed, rank, world_size
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def batches_per_epoch(self) -> int:
        return self.length // (self.batch_size * self.world)

    def global_batches(self, order: list[int], generator: torch.Generator) -> list[list[int]]:
        """Cut this epoch's shuffled ``order`` into at least ``batches_per_epoch()`` global batches."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.length, generator=g).tolist()
        batches = self.global_batches(order, g)[: self.batches_per_epoch()]
        return iter([b[self.rank:: self.world] for b in batches[self.start_batch:]])

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start_batch


class ShuffledBatchSampler(EpochBatchSampler):
    """The engine's default: consecutive global batches of the epoch's shuffled order."""

    def global_batches(self, order: list[int], generator: torch.Generator) -> list[list[int]]:
        size = self.batch_size * self.world
        return [order[k: k + size] for k in range(0, len(order) - size + 1, size)]


class GroupedBatchSampler(EpochBatchSampler):
    """Shuffled batches whose samples share a group (e.g. an aspect-ratio bin).

    Detectors pad every image of a batch to the batch's largest size; batching images of
    similar shape wastes less compute on padding. Indices of the epoch's shuffled order are
    collected per group and a group's global batch is emitted as soon as it fills. The
    leftovers of all groups (less than one global batch each) end the epoch as mixed batches,
    so no sample is starved and an epoch has as many batches as the ungrouped sampler. With a
    single group the batches are exactly :class:`ShuffledBatchSampler`'s.
    """

    def __init__(self, groups: Sequence[int], batch_size: int, *, seed: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        super().__init__(len(groups), batch_size, seed=seed, rank=rank, world_size=world_size)
        self.groups = list(groups)

    def global_batches(self, order: list[int], generator: torch.Generator) -> list[list[int]]:
        size = self.batch_size * self.world
        pending: dict[int, list[int]] = {}
        batches = []
        for i in order:
            bucket = pending.setdefault(self.groups[i], [])
            bucket.append(i)
            if len(bucket) == size:
                batches.append(bucket)
                pending[self.groups[i]] = []
        rest = [i for key in sorted(pending) for i in pending[key]]
        return batches + [rest[k: k + size] for k in range(0, len(rest) - size + 1, size)]


def seed_worker(worker_id: int) -> None:
    """Seed NumPy in a loader worker from torch's per-worker seed (torch seeds itself)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)


def make_loader(dataset: Dataset, batch_size: int, *, batch_sampler: Sampler[list[int]] | None = None,
                num_workers: int = 0, seed: int = 0, collate_fn: Callable[[list], Any] | None = None,
                pin_memory: bool = False) -> DataLoader:
    """A ``DataLoader`` with seeded workers and its own generator (setup never draws from the global RNG).

    Training passes a ``batch_sampler`` (an :class:`EpochBatchSampler`), which then decides the
    batches; without one, batches of ``batch_size`` follow the dataset's order (evaluation).
    """
    common = {"num_workers": num_workers, "collate_fn": collate_fn, "pin_memory": pin_memory,
              "worker_init_fn": seed_worker, "generator": torch.Generator().manual_seed(seed)}
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, **common)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, **common)
