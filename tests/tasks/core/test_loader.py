"""The engine's batch samplers: resumable shuffled batches and group-homogeneous batches."""

import random

import torch

from tasks.core.loader import GroupedBatchSampler, ShuffledBatchSampler


def _batches(sampler, epoch: int, start: int = 0) -> list[list[int]]:
    sampler.set_epoch(epoch, start)
    return list(sampler)


def test_shuffled_batches_follow_seed_and_epoch_and_split_over_ranks() -> None:
    order = torch.randperm(103, generator=torch.Generator().manual_seed(7 * 100_003 + 3)).tolist()
    whole = _batches(ShuffledBatchSampler(103, 8, seed=7), 3)
    assert whole == [order[k: k + 8] for k in range(0, 96, 8)]  # 12 full batches, 7 samples left over
    assert _batches(ShuffledBatchSampler(103, 8, seed=7), 3, start=5) == whole[5:]
    ranks = [_batches(ShuffledBatchSampler(103, 4, seed=7, rank=r, world_size=2), 3) for r in (0, 1)]
    assert [a + b for a, b in zip(*ranks)] == [b[0::2] + b[1::2] for b in whole]


def test_one_group_gives_exactly_the_shuffled_batches() -> None:
    for world in (1, 2):
        for rank in range(world):
            grouped = GroupedBatchSampler([0] * 103, 4, seed=7, rank=rank, world_size=world)
            plain = ShuffledBatchSampler(103, 4, seed=7, rank=rank, world_size=world)
            assert _batches(grouped, 3) == _batches(plain, 3)


def test_batches_share_a_group_cover_the_epoch_and_resume() -> None:
    groups = [random.Random(i).choice([0, 1, 1, 2]) for i in range(200)]
    sampler = GroupedBatchSampler(groups, 8, seed=1)
    sampler.set_epoch(0)
    batches = list(sampler)
    assert len(batches) == sampler.batches_per_epoch() == 25
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat)) == 200  # every sample once, none starved
    mixed = [b for b in batches if len({groups[i] for i in b}) > 1]
    assert len(mixed) <= 2  # only the leftovers of the three groups may mix, at the end
    assert all(b in batches[-2:] for b in mixed)
    sampler.set_epoch(0, start_batch=10)
    assert list(sampler) == batches[10:]
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_ranks_split_each_global_batch() -> None:
    groups = [i % 3 for i in range(120)]
    whole = GroupedBatchSampler(groups, 8, seed=2)
    whole.set_epoch(1)
    ranks = [GroupedBatchSampler(groups, 4, seed=2, rank=r, world_size=2) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(1)
    assert [sorted(a + b) for a, b in zip(*map(list, ranks))] == [sorted(b) for b in list(whole)]
