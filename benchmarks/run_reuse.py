"""Reuse of finished runs across benchmark invocations that share a ``--runs`` folder.

A benchmark that trains many runs (seeds x arms) can be stopped and started again, or extended
with more seeds, without retraining what already finished: each script imports this module
(``benchmarks/`` is on ``sys.path`` when a script in it runs).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tasks.core.runlog import read_jsonl


def finished_run(run: Path, steps: int) -> dict[str, Any] | None:
    """``run``'s last evaluation record if the run reached ``steps``; an unfinished folder is removed
    so that training the same ``trainer.run_name`` again can claim it."""
    metrics = run / "metrics.jsonl"
    records = read_jsonl(metrics) if metrics.is_file() else []
    if records and records[-1].get("step") == steps:
        return records[-1]
    if run.is_dir():
        shutil.rmtree(run)
    return None
