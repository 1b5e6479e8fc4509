"""Multi-process test runs: spawn ``world`` ranks, fail (not block) on a hang, never leave a rank behind."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import torch.multiprocessing as mp


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on now (for ``MASTER_PORT``)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(worker: Callable[..., None], args: tuple[Any, ...], world: int, timeout_s: float = 300) -> None:
    """Run ``worker(rank, *args)`` in ``world`` spawned processes and wait for all of them.

    A rank that raises fails the test with its traceback (``mp.spawn``'s own report). A run
    still going after ``timeout_s`` fails as a hang, and every rank still alive is killed:
    a hung child would otherwise keep pytest from exiting, which stalls CI until its limit.
    """
    context = mp.spawn(worker, args=args, nprocs=world, join=False)
    deadline = time.monotonic() + timeout_s
    try:
        while not context.join(timeout=5):
            assert time.monotonic() < deadline, f"the {world}-process run hung (> {timeout_s:.0f} s)"
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
