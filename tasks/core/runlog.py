"""Run-folder logging: ``metrics.jsonl``, ``train.jsonl``, TensorBoard events, PNG curves."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines log; a corrupt line (a kill mid-write, an edit) is skipped with a
    warning naming the file and line, so one bad row never costs the run its plots or report."""
    if not path.is_file():
        return []
    rows = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if isinstance(row, dict):
            rows.append(row)
        else:
            print(f"warning: {path}:{number} is not a JSON object; skipped", file=sys.stderr)
    return rows


def truncate_jsonl(path: Path, step: int) -> int:
    """Keep only the records up to ``step`` (a resumed run replays the steps after its checkpoint, so
    its logs then equal an uninterrupted run's); returns how many rows were dropped."""
    if not path.is_file():
        return 0
    rows = read_jsonl(path)
    kept = [r for r in rows if isinstance(r.get("step"), (int, float)) and r["step"] <= step]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
    tmp.replace(path)
    return len(rows) - len(kept)


class RunLogger:
    """Writes every record to JSON lines and TensorBoard; only rank 0 creates one."""

    def __init__(self, run_dir: Path, enabled: bool = True) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self._tb: Any = None
        self._purge_step: int | None = None

    def resume_at(self, step: int) -> None:
        """Drop log rows after ``step`` (JSON lines now, TensorBoard events when its writer opens)."""
        if not self.enabled:
            return
        for name in ("train.jsonl", "metrics.jsonl"):
            truncate_jsonl(self.run_dir / name, step)
        self._purge_step = step + 1

    def _writer(self) -> Any:
        if self._tb is None:  # opened on first use, so a resume can still ask it to purge later events
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=self._purge_step)
            except ImportError:  # tensorboard is a dependency; tolerate its absence anyway
                self._tb = False
        return self._tb or None

    def _write(self, name: str, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.run_dir / name, "a") as f:
            f.write(json.dumps(record) + "\n")
        tb = self._writer()
        if tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                    tb.add_scalar(key, value, record["step"])

    def train(self, record: dict[str, Any]) -> None:
        self._write("train.jsonl", record)

    def eval(self, record: dict[str, Any]) -> None:
        self._write("metrics.jsonl", record)
        if self._tb:
            self._tb.flush()

    def close(self) -> None:
        if self._tb:
            self._tb.close()
        self._tb = None


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
    return save_figure(fig, run_dir / "curves.png", title, dpi=110)


def save_figure(fig: Any, path: Path, title: str = "", dpi: int = 100) -> Path:
    """Title, lay out, write and close a matplotlib figure (the last steps of every run plot)."""
    import matplotlib.pyplot as plt

    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
