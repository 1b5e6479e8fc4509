"""Device and precision choices: CUDA when present, bf16 autocast there, fp32 on CPU."""

from __future__ import annotations

import contextlib
import os

import torch

from .errors import UserError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("trainer.device=cuda but no CUDA device is visible; use trainer.device=cpu or auto")
        return torch.device("cuda", local_rank)
    if name == "cpu":
        return torch.device("cpu")
    raise UserError(f"trainer.device={name!r} is not valid; choose auto, cpu or cuda")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or ``None`` for full fp32."""
    if precision == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    if precision == "fp32":
        return None
    if precision in ("bf16", "fp16"):
        if device.type != "cuda" and precision == "fp16":
            raise UserError("trainer.precision=fp16 needs CUDA; use bf16 or fp32 on CPU")
        return torch.bfloat16 if precision == "bf16" else torch.float16
    raise UserError(f"trainer.precision={precision!r} is not valid; choose auto, bf16, fp16 or fp32")


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def set_threads(threads: int, world_size: int = 1, num_workers: int = 0) -> None:
    """Threads per process, so that processes and loader workers do not oversubscribe the cores.

    ``threads > 0`` is the user's choice. Otherwise the cores are split between the ranks on this
    machine, and each rank leaves one core per loader worker (workers run one thread each). Spinning
    OpenMP threads that wait for cores stall each other by 10x or more (``OMP_WAIT_POLICY=PASSIVE``
    is set by ``import tasks`` before torch loads; see the README's performance notes).
    """
    if threads <= 0:
        if world_size <= 1 and num_workers <= 0:
            return
        threads = max(1, (os.cpu_count() or 1) // max(1, world_size) - num_workers)
    torch.set_num_threads(threads)
