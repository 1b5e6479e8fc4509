"""Checkpoints that survive a crash and refuse what is not theirs.

Writes go to a temporary file in the same folder, are flushed to disk, then renamed over
the target: a run killed mid-write leaves the previous checkpoint intact. Loads use
``weights_only=True``, so a pickle carrying code is refused instead of executed.
"""

from __future__ import annotations

import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import UserError

FORMAT = "residual-suite-checkpoint"
VERSION = 1


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to ``path`` via a temporary file + ``os.replace`` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def make_checkpoint(task: str, **payload: Any) -> dict[str, Any]:
    """Wrap ``payload`` with the format marker and the task name checked on load."""
    return {"format": FORMAT, "version": VERSION, "task": task, **payload}


def load_checkpoint(path: str | Path, task: str | None = None) -> dict[str, Any]:
    """Load a checkpoint safely; ``task`` (if given) must match the one that wrote it."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {str(path)!r} does not exist; point at a run folder with checkpoints/")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise UserError(f"{path} is not a safe residual-suite checkpoint ({refusal_reason(err)}); "
                        "only files written by `rsuite train` load") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{path} is not a residual-suite checkpoint; only files written by `rsuite train` load")
    if task is not None and ckpt.get("task") != task:
        raise UserError(f"{path} was written by task {ckpt.get('task')!r}, not {task!r}; "
                        f"use `rsuite evaluate` on a {task} run")
    return ckpt


def refusal_reason(err: Exception) -> str:
    """Why ``torch.load(weights_only=True)`` refused a file, in a few words: the blocked object when
    torch names one (``unsupported GLOBAL posix.system``), else the first sentence of its message."""
    text = str(err)
    blocked = re.search(r"unsupported GLOBAL ([\w.]+)", text)
    if blocked:
        return f"it holds the object {blocked.group(1)}, which weights-only loading blocks"
    first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
    return first.split(". ")[0].rstrip(".")


def remove_stale_temporaries(folder: Path) -> int:
    """Delete ``.<name>.*.tmp`` files that a kill during :func:`atomic_save` left behind; returns how many."""
    stale = list(Path(folder).glob(".*.tmp")) if Path(folder).is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states as weights-only-safe containers."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
