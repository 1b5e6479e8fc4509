"""``rsuite report``: one Markdown table and figures over every run folder under a root."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .runlog import read_jsonl

#: headline metric per task (the one the report compares)
HEADLINE = {"classification": "top1", "detection": "map_50", "super_resolution": "psnr_y",
            "speech": "wer", "dqn": "return_mean"}


def find_runs(root: Path) -> list[dict[str, Any]]:
    """Every run folder below ``root`` (one with ``config.yaml`` and ``metrics.jsonl``)."""
    runs = []
    for cfg_path in sorted(root.rglob("config.yaml")):
        run_dir = cfg_path.parent
        evals = read_jsonl(run_dir / "metrics.jsonl")
        if not evals:
            continue
        cfg = yaml.safe_load(cfg_path.read_text())
        task = run_dir.parent.name
        final = {k.removeprefix("val/"): v for k, v in evals[-1].items() if k.startswith("val/")}
        if (run_dir / "eval.json").is_file():
            final.update(json.loads((run_dir / "eval.json").read_text()))
        seconds = evals[-1].get("train_seconds")
        runs.append({"task": task, "run": run_dir.name, "path": run_dir, "backbone": cfg["backbone"]["name"],
                     "shortcut": cfg["backbone"].get("shortcut") or "default", "seed": cfg.get("seed", 0),
                     "step": evals[-1]["step"], "metrics": final, "seconds": seconds,
                     "params": evals[-1].get("params")})
    return runs


def write_report(root: Path, out: Path | None = None) -> Path:
    """Write ``report.md`` (+ ``headline.png``) into ``out`` (default ``root/report``)."""
    if not root.is_dir():
        raise UserError(f"{root} is not a folder; pass the runs/ folder that `rsuite train` writes into")
    runs = find_runs(root)
    if not runs:
        raise UserError(f"no run folders (config.yaml + metrics.jsonl) under {root}; train something first")
    out = out or root / "report"
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# residual-suite report", "", f"{len(runs)} runs under `{root}`.", "",
             "| task | run | backbone | shortcut | seed | steps | params | train s | headline | value | curves |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        key = HEADLINE.get(r["task"], "")
        value = r["metrics"].get(key)
        shown = f"{value:.4f}" if isinstance(value, (int, float)) else "-"
        curves = r["path"] / "curves.png"
        link = f"[png]({curves.resolve()})" if curves.is_file() else "-"
        params = f"{r['params'] / 1e6:.2f}M" if r["params"] else "-"
        secs = f"{r['seconds']:.0f}" if r["seconds"] is not None else "-"
        lines.append(f"| {r['task']} | {r['run']} | {r['backbone']} | {r['shortcut']} | {r['seed']} | {r['step']} | "
                     f"{params} | {secs} | {key} | {shown} | {link} |")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    _plot(runs, out / "headline.png")
    return out / "report.md"


def _plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in runs})
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.5), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        rows = [r for r in runs if r["task"] == task and isinstance(r["metrics"].get(HEADLINE.get(task, "")),
                                                                       (int, float))]
        ax.barh([f"{r['backbone']} ({r['run']})"[:40] for r in rows],
                [r["metrics"][HEADLINE[task]] for r in rows])
        ax.set(title=f"{task}: {HEADLINE.get(task, '')}")
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
