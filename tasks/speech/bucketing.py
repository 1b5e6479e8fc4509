"""Length-bucketed training batches on top of the shared engine.

Utterances differ in length several-fold; random batches pad most of each batch with zeros
that the network still convolves. The sampler here shuffles, then sorts each pool of ~50
batches by duration, cuts batches and shuffles their order: batches hold similar lengths
while every epoch still sees a new mix. Like the engine's sampler, its order depends only on
``(seed, epoch)`` and it can start mid-epoch, so resumed runs see the batches an
uninterrupted run would; under DDP each rank takes its share of every global batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Sampler

from tasks.core.engine import Trainer
from tasks.core.loader import seed_worker

POOL_BATCHES = 50


class LengthBucketSampler(Sampler[list[int]]):
    """Batches of similar duration for one rank; same interface as the engine's ``ResumableSampler``."""

    def __init__(self, durations: list[float], batch_size: int, *, seed: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        self.durations, self.batch_size = list(durations), batch_size
        self.seed, self.rank, self.world = seed, rank, world_size
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def batches_per_epoch(self) -> int:
        return len(self.durations) // (self.batch_size * self.world)

    def _batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(len(self.durations), generator=g).tolist()
        size = self.batch_size * self.world  # global batch: ranks split each one below
        order = order[: self.batches_per_epoch() * size]
        batches = []
        for start in range(0, len(order), size * POOL_BATCHES):
            pool = sorted(order[start: start + size * POOL_BATCHES], key=self.durations.__getitem__)
            batches += [pool[i: i + size] for i in range(0, len(pool), size)]
        shuffled = torch.randperm(len(batches), generator=g).tolist()
        return [batches[i][self.rank:: self.world] for i in shuffled]

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches()[self.start_batch:])

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start_batch


class BucketTrainer(Trainer):
    """The engine's trainer with the training loader swapped for length-bucketed batches.

    Everything else (loop, schedule, checkpoints, resume, DDP, logging) is the engine's. The
    bucket sampler yields as many batches per epoch as the engine's sampler would, so the
    step counts the engine derived stay valid.
    """

    def _build_loaders(self) -> None:
        super()._build_loaders()
        durations = getattr(self.data.train, "durations", None)
        if not getattr(self.cfg.data, "bucket", False) or durations is None:
            return
        self.sampler = LengthBucketSampler(durations, self.local_batch, seed=self.cfg.seed,
                                           rank=self.dist.rank, world_size=self.dist.world_size)
        assert self.sampler.batches_per_epoch() == self.steps_per_epoch
        workers = self.cfg.trainer.num_workers
        self.train_loader = DataLoader(self.data.train, batch_sampler=self.sampler, num_workers=workers,
                                       collate_fn=self.data.collate_fn, pin_memory=self.device.type == "cuda",
                                       worker_init_fn=seed_worker,
                                       generator=torch.Generator().manual_seed(self.cfg.seed))
