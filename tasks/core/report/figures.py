"""The report's figures (PNG files in the report folder; the HTML embeds the same files).

``headline.png``: one panel per task with its full title; for every row each run is a point
(a repeated seed is drawn as an ``x``) beside the row's mean ± std over distinct seeds, with the
row's baseline as a dashed line and residual/plain twins next to each other on a shaded band.
``pairs.png``: for every residual/plain pair, the headline and the training loss of all their
runs against steps, overlaid (thin: each run; thick: mean over the runs at common steps).
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from ..runlog import read_jsonl
from .groups import Pair, Row

COLORS = {"residual": "tab:blue", "plain": "tab:orange"}
STYLE = {"residual": "-", "plain": "--"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def task_title(rows: list[Row]) -> str:
    """``classification: top1 on digits (higher is better)``; the data named when all rows share it."""
    first = rows[0]
    data = {r.data for r in rows}
    on = f" on {data.pop()}" if len(data) == 1 and "" not in data else ""
    return f"{first.task}: {first.metric}{on} ({'higher' if first.higher_is_better else 'lower'} is better)"


def headline_figure(rows: list[Row], path: Path) -> Path:
    plt = _pyplot()
    tasks = list(dict.fromkeys(r.task for r in rows))
    ncols = min(3, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    widest = max(sum(r.task == t for r in rows) for t in tasks)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * max(4.8, 1.7 * widest), nrows * 4.4), squeeze=False)
    for ax in axes.flat[len(tasks):]:
        ax.set_visible(False)
    for ax, task in zip(axes.flat, tasks):
        _task_panel(ax, [r for r in rows if r.task == task])
    handles = [plt.Line2D([], [], color=c, marker="o", ls="", label=f"{v} run") for v, c in COLORS.items()]
    handles += [plt.Line2D([], [], color="k", marker="D", ls="", label="row mean ± std over seeds"),
                plt.Line2D([], [], color="tab:gray", marker="x", ls="", label="repeated seed"),
                plt.Line2D([], [], color="tab:red", ls=":", label="baseline (chance, bicubic, random policy)")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _task_panel(ax: Any, rows: list[Row]) -> None:
    for i, row in enumerate(rows):
        if row.variant == "residual" and row.twins and i + 1 < len(rows) and rows[i + 1] in row.twins:
            ax.axvspan(i - 0.45, i + 1.45, color="0.93", zorder=0)  # a twin pair shares a band
        color = COLORS[row.variant]
        runs = sorted(row.runs, key=lambda r: (r.seed, r.rel))
        repeated = row.repeated
        for j, run in enumerate(runs):
            x = i - 0.12 + (0.16 * (j / (len(runs) - 1) - 0.5) if len(runs) > 1 else 0.0)
            ax.plot(x, run.value, ls="", marker="x" if run.seed in repeated else "o", color=color, alpha=0.8,
                    ms=6, zorder=3)
        ax.errorbar(i + 0.15, row.mean, yerr=row.std if len(row.seeds) > 1 else None, color="k", marker="D",
                    ms=5, capsize=4, zorder=4)
        if row.baseline is not None:
            ax.plot([i - 0.4, i + 0.4], [row.baseline.value] * 2, ls=":", color="tab:red", lw=1.5, zorder=2)
            ax.annotate(row.baseline.name, (i + 0.4, row.baseline.value), fontsize=7, color="tab:red",
                        ha="right", va="bottom")
    ax.set_xticks(range(len(rows)), [f"{r.label(28)}\n{len(r.seeds)} seed{'s' * (len(r.seeds) > 1)}"
                                     for r in rows], fontsize=7)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylabel(rows[0].metric)
    ax.set_title(task_title(rows), fontsize=10)
    ax.grid(axis="y", alpha=0.3)


def _series(rows: list[dict[str, Any]], key: str) -> dict[int, float]:
    return {int(r["step"]): float(r[key]) for r in rows
            if isinstance(r.get(key), (int, float)) and math.isfinite(r[key]) and "step" in r}


def _overlay(ax: Any, row: Row, key: str, from_train: bool) -> bool:
    """Each run of ``row`` as a thin line, the mean at the steps all runs share as a thick one."""
    curves = []
    for run in row.runs:
        records = read_jsonl(run.path / "train.jsonl") if from_train else run.history
        series = _series(records, key)
        if series:
            curves.append(series)
            ax.plot(list(series), list(series.values()), color=COLORS[row.variant], ls=STYLE[row.variant], lw=0.8,
                    alpha=0.35)
    if not curves:
        return False
    common = sorted(set.intersection(*(set(c) for c in curves)))
    if common:
        ax.plot(common, [statistics.fmean(c[s] for c in curves) for s in common], color=COLORS[row.variant],
                ls=STYLE[row.variant], lw=2, label=f"{row.backbone} {row.variant} ({len(curves)} runs)")
    return True


def pairs_figure(pairs: list[Pair], path: Path) -> Path | None:
    if not pairs:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(len(pairs), 2, figsize=(12, 3.8 * len(pairs)), squeeze=False)
    for (ax_metric, ax_loss), pair in zip(axes, pairs):
        res, plain = pair.residual, pair.plain
        for row in (res, plain):
            _overlay(ax_metric, row, f"val/{row.metric}", from_train=False)
        if res.baseline is not None:
            ax_metric.axhline(res.baseline.value, ls=":", color="tab:red", label=res.baseline.name)
        pair_name = (f"{res.backbone} ({res.variant}, {res.id}) vs {plain.backbone} ({plain.variant}, {plain.id}), "
                     f"{len(res.seeds)} / {len(plain.seeds)} seeds")
        ax_metric.set(xlabel="step", ylabel=res.metric, title=f"{res.task}: {res.metric}\n{pair_name}")
        drawn = [_overlay(ax_loss, row, "train/loss", from_train=True) for row in (res, plain)]
        if any(drawn):
            ax_loss.set_yscale("log")
        ax_loss.set(xlabel="step", ylabel="training loss", title=f"{res.task}: training loss\n{pair_name}")
        for ax in (ax_metric, ax_loss):
            ax.title.set_fontsize(9)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
