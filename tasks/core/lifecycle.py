"""The one run lifecycle that the supervised engine and the DQN loop share.

A run folder is *claimed* (exclusively: two processes given the same ``trainer.run_name``
cannot both train into it), gets its resolved ``config.yaml``, ``data_info.json`` and
``run.json`` (task, headline metric and its direction, for reports), then receives
``checkpoints/last.pt`` and ``best.pt`` (atomic writes) and the metric logs. :class:`Progress`
is the part of a checkpoint every trainer has: step, training seconds, best headline value.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from .checkpoint import (
    atomic_save,
    load_checkpoint,
    make_checkpoint,
    remove_stale_temporaries,
    rng_state,
    set_rng_state,
)
from .config import save_yaml, to_dict
from .errors import UserError
from .runlog import RunLogger

CLAIM = ".claim"  # holds the pid of the process training into the folder; locked for the run's life


class RunFolder:
    """``runs/<task>/<name>/`` held by one process from :meth:`claim` until :meth:`release`."""

    def __init__(self, path: Path, task: str, is_main: bool = True) -> None:
        self.path, self.task, self.is_main = Path(path), task, is_main
        self._fd: int | None = None
        self._created = False
        self.logger: RunLogger | None = None

    # --------------------------------------------------------------- claim
    @classmethod
    def claim(cls, path: Path, task: str, resume: bool, is_main: bool = True) -> RunFolder:
        """Take ``path`` for a new run (it must hold none) or to resume the run in it.

        The claim file is created with ``O_EXCL`` and ``flock``-ed: a second process is refused
        at once instead of interleaving logs and overwriting checkpoints. Only rank 0 claims.
        """
        run = cls(path, task, is_main)
        if not is_main:
            return run
        if resume:
            if not (run.path / "config.yaml").is_file():
                raise UserError(f"{run.path} is not a run folder (no config.yaml); pass the folder `rsuite train` "
                                "printed")
            run._lock(run._open_claim(os.O_CREAT))
        else:
            run._create()
            run._lock(run._open_claim(os.O_CREAT | os.O_EXCL))
        removed = remove_stale_temporaries(run.path / "checkpoints")
        if removed:
            print(f"removed {removed} unfinished checkpoint file(s) left by a killed run in {run.path}",
                  file=sys.stderr)
        return run

    def _create(self) -> None:
        """Make the folder; an existing one may only be empty (a folder the user made for the run)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise UserError(f"cannot create runs under {self.path.parent}: a file is in the way; set "
                            "trainer.runs_dir to a folder") from None
        except OSError as err:
            raise UserError(f"cannot create {self.path.parent} ({err.strerror}); set trainer.runs_dir to a "
                            "writable folder") from None
        try:
            self.path.mkdir()
            self._created = True
        except FileExistsError:
            if not self.path.is_dir():
                raise UserError(f"{self.path} is a file, not a run folder; pick another trainer.run_name") from None
            if any(p.name != CLAIM for p in self.path.iterdir()):
                raise UserError(f"run folder {self.path} already holds a run; resume it with --resume {self.path} "
                                "or pick another trainer.run_name") from None
        except OSError as err:
            raise UserError(f"cannot create the run folder {self.path} ({err.strerror}); set trainer.runs_dir "
                            "to a writable folder") from None

    def _open_claim(self, flags: int) -> int:
        try:
            return os.open(self.path / CLAIM, os.O_RDWR | flags, 0o644)
        except FileExistsError:
            raise UserError(f"run folder {self.path} is being claimed by another process; pick another "
                            "trainer.run_name") from None
        except OSError as err:
            raise UserError(f"cannot write into the run folder {self.path} ({err.strerror}); make it writable or "
                            "pick another trainer.runs_dir") from None

    def _lock(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise UserError(f"run folder {self.path} is in use by another training (pid {owner}); wait for it "
                            "or pick another trainer.run_name") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self, failed: bool = False) -> None:
        """Unlock; a fresh run that failed before its first checkpoint leaves no folder behind."""
        if self.logger is not None:
            self.logger.close()
            self.logger = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            (self.path / CLAIM).unlink(missing_ok=True)
        if failed and self._created and not self.last.is_file():
            shutil.rmtree(self.path, ignore_errors=True)

    # --------------------------------------------------------------- files
    @property
    def last(self) -> Path:
        return self.path / "checkpoints" / "last.pt"

    @property
    def best(self) -> Path:
        return self.path / "checkpoints" / "best.pt"

    def open_logger(self) -> RunLogger:
        """Metric logs (JSON lines, TensorBoard) of this run; silent on ranks other than 0."""
        if self.logger is None:
            self.logger = RunLogger(self.path, enabled=self.is_main)
        return self.logger

    def write_files(self, cfg: Any, info: dict[str, Any], describe: dict[str, Any]) -> None:
        """``config.yaml`` (resolved settings), ``data_info.json`` (what the model was built for) and
        ``run.json`` (task, headline metric and direction, start time)."""
        if not self.is_main:
            return
        save_yaml(cfg, self.path / "config.yaml")
        (self.path / "data_info.json").write_text(json.dumps(info, indent=1, default=str) + "\n")
        meta_path = self.path / "run.json"
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {"started": time.strftime("%FT%T%z")}
        meta_path.write_text(json.dumps({**meta, **describe}, indent=1) + "\n")

    def save(self, state: dict[str, Any], best: dict[str, Any] | None = None) -> None:
        """``last.pt`` (everything to resume) and, when the headline improved, ``best.pt``."""
        if not self.is_main:
            return
        atomic_save(state, self.last)
        if best is not None:
            atomic_save(best, self.best)

    def load_last(self) -> dict[str, Any] | None:
        """The checkpoint to resume from, or ``None`` when the run has not saved one yet.

        Log rows written after that checkpoint (the kill came later) are dropped, because the
        resumed run writes them again: its logs then equal an uninterrupted run's.
        """
        if not self.last.is_file():
            return None
        ckpt = load_checkpoint(self.last, self.task)
        self.open_logger().resume_at(int(ckpt["step"]))
        return ckpt


@dataclass
class Progress:
    """Where a run stands: step, training seconds and the best value of the monitored metric."""

    metric: str
    higher_is_better: bool = True
    step: int = 0
    elapsed: float = 0.0
    best: float | None = None

    def improved(self, metrics: dict[str, Any]) -> bool:
        """Record ``metrics[metric]`` if it beats the best so far (NaN never does).

        A metric the task does not report is a settings error (``trainer.monitor``), raised at the
        first evaluation, before any checkpoint: otherwise no ``best.pt`` would ever be written.
        """
        if metrics and self.metric not in metrics:
            names = ", ".join(k for k, v in metrics.items() if isinstance(v, (int, float)))
            raise UserError(f"trainer.monitor={self.metric} is not a metric of this task; choose one of: {names}")
        value = metrics.get(self.metric)
        if not isinstance(value, (int, float)) or value != value or value in (float("inf"), float("-inf")):
            return False
        better = self.best is None or (value > self.best if self.higher_is_better else value < self.best)
        if better:
            self.best = float(value)
        return better

    def state(self) -> dict[str, Any]:
        return {"step": self.step, "elapsed": self.elapsed, "best": self.best, "monitor": self.metric}

    def load(self, ckpt: dict[str, Any]) -> None:
        self.step, self.elapsed, self.best = int(ckpt["step"]), float(ckpt.get("elapsed", 0.0)), ckpt.get("best")


class StopRequest:
    """Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after the current step, so the checkpoint it
    then writes is consistent; a second signal interrupts at once. Installed only in the main thread."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading_main():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt
        self.signal = signum
        print("\nstopping after this step to write a checkpoint (press Ctrl-C again to abort at once)",
              file=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def __bool__(self) -> bool:
        return self.signal is not None


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def checkpoint(task: str, cfg: Any, info: dict[str, Any], progress: Progress, **payload: Any) -> dict[str, Any]:
    """A full resumable checkpoint: ``payload`` (weights, optimizer, ...) plus config, data info,
    progress and every RNG state."""
    return make_checkpoint(task, config=to_dict(cfg), data_info=info, rng=rng_state(), **progress.state(), **payload)


def best_view(state: dict[str, Any], drop: tuple[str, ...], **replace: Any) -> dict[str, Any]:
    """``best.pt`` from a full checkpoint: the weights that scored best, without what only resuming needs."""
    return {**{k: v for k, v in state.items() if k not in (*drop, "rng")}, **replace}


def restore(ckpt: dict[str, Any], progress: Progress) -> None:
    """Progress and RNG states of a resumed run (the trainer restores its own weights and optimizer)."""
    progress.load(ckpt)
    set_rng_state(ckpt["rng"])
