"""Process-group setup for ``torchrun`` (NCCL on GPU, gloo on CPU) and the collectives the engine needs.

Rank 0 does the I/O. Evaluation is sharded: each rank scores every ``world_size``-th validation
batch and the metrics are reduced (:func:`all_reduce_sum`, torchmetrics' own sync) or the
per-sample results gathered back into dataset order (:func:`gather_batches`) for metrics that
need them all (COCO mAP).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist

#: how long a collective may wait for the slowest rank (building a dataset cache, a COCO evaluation);
#: NCCL's default of 10 minutes aborts those
DEFAULT_TIMEOUT_S = 3600


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_type: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> DistInfo:
    """Initialise the process group when launched by ``torchrun`` (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")), local_world)
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        kwargs: dict[str, Any] = {}
        if device_type == "cuda":
            torch.cuda.set_device(info.local_rank)
            kwargs["device_id"] = torch.device("cuda", info.local_rank)  # eager NCCL init, no device guessing
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s), **kwargs)
    return info


#: how long :func:`teardown` lets the backend's worker threads finish before the group is destroyed
SETTLE_S = 0.2


def teardown() -> None:
    """Destroy the process group, after letting gloo's worker threads drop the work they finished.

    A finished collective can hold the last reference to a Python-owned tensor (a logged loss's
    all-reduce); the worker thread that drops it needs the GIL. The group's destructor, run by
    whoever drops the last reference to it (``destroy_process_group`` or, later, the DDP reducer of a
    failed run's traceback), holds the GIL and waits for those threads: a deadlock (torch 2.9)
    that froze about one run in six when a run stopped right after a collective (a NaN stop).
    Sleeping releases the GIL, so the threads finish first; no collective follows teardown.
    """
    if dist.is_initialized():
        time.sleep(SETTLE_S)
        dist.destroy_process_group()


def active() -> bool:
    """Whether collectives are live (a process group of more than one process)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_world() -> tuple[int, int]:
    return (dist.get_rank(), dist.get_world_size()) if active() else (0, 1)


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over processes, in place (identity when not distributed)."""
    if active():
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def barrier() -> None:
    if active():
        dist.barrier()


def broadcast(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (a picklable object)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_batches(batches: list[list[Any]]) -> list[Any] | None:
    """Per-sample results of a sharded evaluation, back in dataset order, on rank 0 (``None`` elsewhere).

    Rank ``r`` scored global batches ``r, r + world, ...`` (see :func:`shard_batches`), holding
    one list of per-sample results per batch; interleaving the ranks' batches restores the
    order a single process would have seen, so order-sensitive metrics (COCO's tie-breaking
    between equal scores) give exactly the single-process numbers.
    """
    if not active():
        return [item for batch in batches for item in batch]
    rank, world = rank_and_world()
    everyone: list[list[list[Any]] | None] = [None] * world
    dist.gather_object(batches, everyone if rank == 0 else None, dst=0)
    if rank != 0:
        return None
    ordered: list[Any] = []
    for k in range(max(len(b) for b in everyone if b is not None)):
        for r in range(world):
            own = everyone[r] or []
            if k < len(own):
                ordered.extend(own[k])
    return ordered


def shard_batches(length: int, batch_size: int, rank: int, world_size: int) -> list[list[int]]:
    """Rank ``rank``'s evaluation batches: every ``world_size``-th of the consecutive ``batch_size`` batches.

    Whole batches, not samples, are dealt out, so a sample meets the same batch neighbours
    whatever the number of processes, and no sample is repeated (``DistributedSampler`` pads
    with repeats, which would bias the metrics).
    """
    batches = [list(range(k, min(k + batch_size, length))) for k in range(0, length, batch_size)]
    return batches[rank::world_size]


@contextlib.contextmanager
def local_main_first(info: DistInfo) -> Iterator[None]:
    """Local rank 0 runs the block first (builds the dataset caches), the other ranks then read them.

    Cache writers rename complete folders into place, so the later ranks find either nothing
    (and would build their own) or the finished cache, never a half-written one.
    """
    if info.enabled and info.local_rank != 0:
        dist.barrier()
    yield
    if info.enabled and info.local_rank == 0:
        dist.barrier()
