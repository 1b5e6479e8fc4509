"""Pictures of rollouts: time series and a phase portrait per trajectory, predicted vs true."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MAX_SERIES = 6  # state dimensions drawn in a time-series panel (a long spring chain shows its first 6)


def phase_dims(names: list[str], system: str | None) -> tuple[int, int]:
    """Which two dimensions the phase portrait shows: x-z for Lorenz (its butterfly), q1-v1 for a chain, else 0-1."""
    if system == "lorenz":
        return 0, 2
    if system == "spring_chain":
        return 0, len(names) // 2
    return 0, min(1, len(names) - 1)


def plot_rollouts(items: list[tuple[np.ndarray, np.ndarray | None, np.ndarray]], names: list[str], path: Path,
                  title: str, phase: tuple[int, int] = (0, 1)) -> Path:
    """One row per ``(t (T,), true (T, D) or None, predicted (T, D))``: time series | phase portrait."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, len(items))
    fig, axes = plt.subplots(rows, 2, figsize=(11, 3.2 * rows), squeeze=False,
                             gridspec_kw={"width_ratios": [2.2, 1]})
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for row, (t, true, pred) in enumerate(items):
        ax, ph = axes[row]
        for d in range(min(MAX_SERIES, pred.shape[1])):
            c = colors[d % len(colors)]
            if true is not None:
                ax.plot(t[: len(true)], true[:, d], color=c, lw=1.6, label=f"{names[d]} true")
            ax.plot(t, pred[:, d], color=c, lw=1.2, ls="--", label=f"{names[d]} predicted")
        ax.set(xlabel="t", title=f"{title}: trajectory {row + 1}" if rows > 1 else title)
        ax.grid(alpha=0.3)
        a, b = phase
        if true is not None:
            ph.plot(true[:, a], true[:, b], color="black", lw=1.4, label="true")
        ph.plot(pred[:, a], pred[:, b], color="tab:red", lw=1.1, ls="--", label="predicted")
        ph.plot(pred[0, a], pred[0, b], "o", color="tab:green", label="start")
        ph.set(xlabel=names[a], ylabel=names[b], title="phase portrait")
        ph.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, ncol=2, loc="upper right")
    axes[0][1].legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
