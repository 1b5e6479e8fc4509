"""Run-folder logging: ``metrics.jsonl``, ``train.jsonl``, TensorBoard events, PNG curves."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class RunLogger:
    """Writes every record to JSON lines and TensorBoard; only rank 0 creates one."""

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self._tb = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(run_dir / "tb"))
            except ImportError:  # tensorboard is a dependency; tolerate its absence anyway
                self._tb = None

    def _write(self, name: str, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.run_dir / name, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    self._tb.add_scalar(key, value, record["step"])

    def train(self, record: dict[str, Any]) -> None:
        self._write("train.jsonl", record)

    def eval(self, record: dict[str, Any]) -> None:
        self._write("metrics.jsonl", record)
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def plot_curves(run_dir: Path, title: str = "") -> Path | None:
    """``curves.png``: training loss and every validation metric against steps."""
    train = read_jsonl(run_dir / "train.jsonl")
    evals = read_jsonl(run_dir / "metrics.jsonl")
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    val_keys = sorted({k for r in evals for k, v in r.items() if k.startswith("val/") and isinstance(v, (int, float))})
    fig, axes = plt.subplots(1, 1 + len(val_keys), figsize=(4.2 * (1 + len(val_keys)), 3.4), squeeze=False)
    ax = axes[0][0]
    if train:
        ax.plot([r["step"] for r in train], [r["train/loss"] for r in train], lw=1)
    ax.set(title="train/loss", xlabel="step")
    ax.set_yscale("log")
    for ax, key in zip(axes[0][1:], val_keys):
        pts = [(r["step"], r[key]) for r in evals if key in r]
        ax.plot(*zip(*pts), marker="o")
        ax.set(title=key, xlabel="step")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = run_dir / "curves.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
