"""Data loading the engine controls: resumable, shardable batch sampling and seeded workers.

A training epoch is a list of global batches fixed by ``(seed, epoch)``, so a resumed run can
skip the batches it already consumed and see exactly the samples an uninterrupted run would.
Under DDP each rank takes every ``world_size``-th sample of each global batch, so the ranks'
local batches together are the single-process global batch. Tasks may cut batches their own
way (similar lengths, aspect ratios) by subclassing :class:`EpochBatchSampler`.

Augmentation draws from torch's CPU generator, seeded per sample from ``(seed, epoch, sample
index)`` (:class:`SeededBatches`, :class:`SeededSamples`). So every rank draws its own
numbers (its samples differ), a DDP run augments exactly as one process would, and a run
resumed mid-epoch, with or without loader workers, sees exactly the crops and flips of an
uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info


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


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one sample of one epoch (splitmix64 finaliser over the three numbers)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB + 1) % 2**64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) % 2**64
    return (x ^ (x >> 31)) >> 1


class SeededBatches(Sampler[list[tuple[int, int]]]):
    """A training batch sampler whose batches carry each sample's augmentation seed: ``[(index, seed), ...]``.

    The seed depends on ``(seed, epoch, index)`` only (the epoch is the wrapped sampler's, see
    :meth:`EpochBatchSampler.set_epoch`), not on the rank, the worker or the position where a
    resumed run starts.
    """

    def __init__(self, batch_sampler: Sampler[list[int]], seed: int) -> None:
        self.batch_sampler, self.seed = batch_sampler, seed

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = int(getattr(self.batch_sampler, "epoch", 0))
        for batch in self.batch_sampler:
            yield [(i, sample_seed(self.seed, epoch, i)) for i in batch]

    def __len__(self) -> int:
        return len(self.batch_sampler)  # type: ignore[arg-type]


class SeededSamples(Dataset):
    """``dataset`` read by :class:`SeededBatches` keys: torch's CPU generator is seeded per sample.

    In the main process (``num_workers=0``) the generator's state is restored after each batch,
    so dropout and everything else drawing from it keep their own stream.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, key: tuple[int, int]) -> Any:
        return self.__getitems__([key])[0]

    def __getitems__(self, keys: list[tuple[int, int]]) -> list[Any]:
        generator = torch.default_generator
        in_main = get_worker_info() is None
        state = generator.get_state() if in_main else None
        try:
            out = []
            for index, seed in keys:
                generator.manual_seed(seed)
                out.append(self.dataset[index])
            return out
        finally:
            if state is not None:
                generator.set_state(state)


def seed_worker(worker_id: int) -> None:
    """Seed NumPy in a loader worker from torch's per-worker seed (torch seeds itself)."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)


def make_loader(dataset: Dataset, batch_size: int, *, batch_sampler: Sampler[list[int]] | None = None,
                num_workers: int = 0, seed: int = 0, rank: int = 0, collate_fn: Callable[[list], Any] | None = None,
                pin_memory: bool = False, prefetch_factor: int = 4) -> DataLoader:
    """A ``DataLoader`` with seeded workers and its own generator (setup never draws from the global RNG).

    Training passes a ``batch_sampler`` (an :class:`EpochBatchSampler`), which then decides the
    batches and seeds each sample's augmentation (:class:`SeededBatches`); without one, batches
    of ``batch_size`` follow the dataset's order (evaluation). Workers stay alive between epochs
    and evaluations (``persistent_workers``) and keep ``prefetch_factor`` batches each in flight.
    """
    common: dict[str, Any] = {
        "num_workers": num_workers, "collate_fn": collate_fn, "pin_memory": pin_memory,
        "worker_init_fn": seed_worker,
        # the workers' base seed is drawn from this generator: folding the rank in gives each rank its own
        "generator": torch.Generator().manual_seed(sample_seed(seed, 0, rank))}
    if num_workers > 0:
        common.update(persistent_workers=True, prefetch_factor=prefetch_factor)
    if batch_sampler is not None:
        return DataLoader(SeededSamples(dataset), batch_sampler=SeededBatches(batch_sampler, seed), **common)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, **common)


def shard_loader(dataset: Dataset, batch_size: int, rank: int, world_size: int, *, num_workers: int = 0,
                 collate_fn: Callable[[list], Any] | None = None, pin_memory: bool = False) -> DataLoader:
    """This rank's share of an evaluation: every ``world_size``-th batch of ``batch_size`` consecutive
    samples (see :func:`tasks.core.distributed.shard_batches`), in dataset order."""
    from .distributed import shard_batches

    batches = shard_batches(len(dataset), batch_size, rank, world_size)  # type: ignore[arg-type]
    common: dict[str, Any] = {"num_workers": num_workers, "collate_fn": collate_fn, "pin_memory": pin_memory,
                              "worker_init_fn": seed_worker}
    if num_workers > 0:
        common.update(persistent_workers=True, prefetch_factor=2)
    return DataLoader(dataset, batch_sampler=batches, **common)
