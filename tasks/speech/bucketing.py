"""Length-bucketed training batches (the speech task's ``batch_sampler`` for the shared engine).

Utterances differ in length several-fold; random batches pad most of each batch with zeros
that the network still convolves. The sampler here shuffles, then sorts each pool of ~50
batches by duration, cuts batches and shuffles their order: batches hold similar lengths
while every epoch still sees a new mix. Like the engine's sampler, its order depends only on
``(seed, epoch)`` and it can start mid-epoch, so resumed runs see the batches an
uninterrupted run would; under DDP each rank takes its share of every global batch.
"""

from __future__ import annotations

import torch

from tasks.core.loader import EpochBatchSampler

POOL_BATCHES = 50


class LengthBucketSampler(EpochBatchSampler):
    """Batches of similar duration, for the engine (see :class:`tasks.core.loader.EpochBatchSampler`)."""

    def __init__(self, durations: list[float], batch_size: int, *, seed: int = 0, rank: int = 0,
                 world_size: int = 1) -> None:
        super().__init__(len(durations), batch_size, seed=seed, rank=rank, world_size=world_size)
        self.durations = list(durations)

    def global_batches(self, order: list[int], generator: torch.Generator) -> list[list[int]]:
        size = self.batch_size * self.world
        order = order[: self.batches_per_epoch() * size]
        batches = []
        for start in range(0, len(order), size * POOL_BATCHES):
            pool = sorted(order[start: start + size * POOL_BATCHES], key=self.durations.__getitem__)
            batches += [pool[i: i + size] for i in range(0, len(pool), size)]
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
