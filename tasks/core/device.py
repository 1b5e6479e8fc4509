"""Device and precision choices: CUDA when present, bf16 autocast there (fp16 where bf16 is not native), fp32 on CPU.

A CUDA device also gets TF32 for its fp32 matrix products and convolutions (the DQN networks,
``trainer.precision=fp32``, the detection heads, ``rsuite evaluate``): 10-bit mantissas in the
tensor cores instead of full fp32 FMA, the trade PyTorch already makes for cuDNN convolutions.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from .errors import UserError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` | ``cpu`` | ``cuda`` -> a device; a CUDA device switches TF32 on for fp32 work."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("trainer.device=cuda but no CUDA device is visible; use trainer.device=cpu or auto")
        enable_tf32()
        return torch.device("cuda", local_rank)
    if name == "cpu":
        return torch.device("cpu")
    raise UserError(f"trainer.device={name!r} is not valid; choose auto, cpu or cuda")


def enable_tf32() -> None:
    """TF32 tensor cores for fp32 matmuls (PyTorch's default is full fp32 there) and convolutions."""
    torch.set_float32_matmul_precision("high")
    torch.backends.cudnn.allow_tf32 = True


def bf16_native(device: torch.device) -> bool:
    """Whether ``device`` computes bf16 in hardware (Ampere and later; emulation does not count)."""
    if device.type != "cuda":
        return True  # CPU autocast to bf16 works everywhere (slow without AVX512-BF16/AMX, but exact in kind)
    return torch.cuda.is_bf16_supported(including_emulation=False)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or ``None`` for full fp32.

    ``auto`` is bf16 on a GPU that has it natively, fp16 (with a gradient scaler, see the engine)
    on older GPUs, and fp32 on the CPU.
    """
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if bf16_native(device) else torch.float16
    if precision == "fp32":
        return None
    if precision in ("bf16", "fp16"):
        if device.type != "cuda" and precision == "fp16":
            raise UserError("trainer.precision=fp16 needs CUDA; use bf16 or fp32 on CPU")
        if precision == "bf16" and not bf16_native(device):
            raise UserError("trainer.precision=bf16 but this GPU has no native bf16 (it needs Ampere or later); "
                            "use trainer.precision=fp16 or auto")
        return torch.bfloat16 if precision == "bf16" else torch.float16
    raise UserError(f"trainer.precision={precision!r} is not valid; choose auto, bf16, fp16 or fp32")


def precision_name(dtype: torch.dtype | None) -> str:
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")  # type: ignore[arg-type]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@contextlib.contextmanager
def cudnn_benchmark(enabled: bool) -> Iterator[None]:
    """cuDNN autotuning inside the block: worth it when every batch has one shape (it re-tunes per new shape)."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def cpu_count() -> int:
    """Cores this process may use (the affinity mask of a container or ``taskset``, else all)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def loader_workers(requested: int, device: torch.device, local_world_size: int = 1) -> int:
    """``trainer.num_workers``: ``-1`` (auto) is ``min(8, cores // processes on this machine)`` on CUDA,
    0 on CPU (there the loader shares the cores with the training step, in the main process)."""
    if requested >= 0:
        return requested
    if device.type != "cuda":
        return 0
    return max(1, min(8, cpu_count() // max(1, local_world_size)))


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
