"""Data loading the engine controls: resumable, shardable sampling and seeded workers.

The sampler's order depends only on ``(seed, epoch)``, so a resumed run can skip the batches
it already consumed and see exactly the samples an uninterrupted run would. Under DDP each
rank takes every ``world_size``-th index of the same permutation, so the ranks' local
batches together are the single-process global batch.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class ResumableSampler(Sampler[int]):
    """Shuffled (or ordered) indices for one rank, starting at a given batch of the epoch."""

    def __init__(self, length: int, batch_size: int, *, shuffle: bool = True, seed: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        self.length, self.batch_size = length, batch_size
        self.shuffle, self.seed, self.rank, self.world = shuffle, seed, rank, world_size
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.length, generator=g).tolist()
        else:
            order = list(range(self.length))
        per_rank = self.length // self.world
        return order[self.rank: per_rank * self.world: self.world]

    def batches_per_epoch(self) -> int:
        return (self.length // self.world) // self.batch_size

    def __iter__(self) -> Iterator[int]:
        idx = self._indices()[: self.batches_per_epoch() * self.batch_size]
        return iter(idx[self.start_batch * self.batch_size:])

    def __len__(self) -> int:
        return (self.batches_per_epoch() - self.start_batch) * self.batch_size


def seed_worker(worker_id: int) -> None:
    """Seed NumPy in a loader worker from torch's per-worker seed (torch seeds itself)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)


def make_loader(dataset: Dataset, batch_size: int, *, sampler: Sampler | None = None, shuffle: bool = False,
                num_workers: int = 0, seed: int = 0, collate_fn: Callable[[list], Any] | None = None,
                pin_memory: bool = False, drop_last: bool = False) -> DataLoader:
    """A ``DataLoader`` with its own generator, so loader setup never draws from the global RNG."""
    return DataLoader(
        dataset, batch_size=batch_size, sampler=sampler, shuffle=shuffle if sampler is None else False,
        num_workers=num_workers, collate_fn=collate_fn, pin_memory=pin_memory, drop_last=drop_last,
        worker_init_fn=seed_worker, generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )
