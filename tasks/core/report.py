"""``rsuite report``: one cross-domain table and figures over every run folder under a root.

Runs are grouped by task, backbone and variant (residual, or plain when the backbone was
built with ``shortcut="none"``); each group shows its headline metric as mean ± std over
seeds, and each domain gets a residual-minus-plain line. Markdown and a self-contained HTML
page (figures embedded) are written side by side.
"""

from __future__ import annotations

import base64
import json
import statistics
from pathlib import Path
from typing import Any

import yaml

from .errors import UserError
from .runlog import read_jsonl

PLAIN_NAMES = ("plain",)


def variant(backbone: dict[str, Any]) -> str:
    """``plain`` for a net without shortcuts, else ``residual``."""
    if backbone.get("shortcut") == "none" or str(backbone.get("name", "")).startswith(PLAIN_NAMES):
        return "plain"
    return "residual"


def find_runs(root: Path) -> list[dict[str, Any]]:
    """Every run folder below ``root`` (``run.json`` + ``config.yaml`` + ``metrics.jsonl``).

    ``run.json`` names the task and its headline metric with its direction, so the report
    knows no task by name: a new task's runs are compared the same way.
    """
    runs = []
    for meta_path in sorted(root.rglob("run.json")):
        run_dir = meta_path.parent
        evals = read_jsonl(run_dir / "metrics.jsonl")
        if not evals or not (run_dir / "config.yaml").is_file():
            continue
        cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
        meta = json.loads(meta_path.read_text())
        final = {k.removeprefix("val/"): v for k, v in evals[-1].items() if k.startswith("val/")}
        if (run_dir / "eval.json").is_file():
            final.update(json.loads((run_dir / "eval.json").read_text()))
        backbone = cfg.get("backbone", {})
        runs.append({"task": meta["task"], "headline": meta["headline"], "higher_is_better": meta["higher_is_better"],
                     "run": run_dir.name, "path": run_dir, "backbone": backbone.get("name", "?"),
                     "variant": variant(backbone), "seed": cfg.get("seed", 0), "step": evals[-1]["step"],
                     "metrics": final, "seconds": evals[-1].get("train_seconds"), "params": evals[-1].get("params")})
    return runs


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (task, backbone, variant): headline mean/std over seeds, time, params."""
    groups: dict[tuple, list[dict]] = {}
    for r in runs:
        groups.setdefault((r["task"], r["backbone"], r["variant"]), []).append(r)
    rows = []
    for (task, backbone, var), members in sorted(groups.items()):
        key, higher = members[0]["headline"], members[0]["higher_is_better"]
        values = [m["metrics"][key] for m in members if isinstance(m["metrics"].get(key), (int, float))]
        if not values:
            continue
        mean, std = _mean_std(values)
        secs = [m["seconds"] for m in members if m["seconds"] is not None]
        rows.append({"task": task, "backbone": backbone, "variant": var, "metric": key, "higher_is_better": higher,
                     "mean": mean, "std": std, "seeds": len(values), "steps": members[0]["step"],
                     "seconds": statistics.fmean(secs) if secs else None, "params": members[0]["params"],
                     "curves": [m["path"] / "curves.png" for m in members if (m["path"] / "curves.png").is_file()]})
    return rows


def residual_vs_plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per task, residual-minus-plain of the headline (pairs the best residual and plain groups)."""
    out = []
    for task in sorted({r["task"] for r in rows}):
        res = [r for r in rows if r["task"] == task and r["variant"] == "residual"]
        plain = [r for r in rows if r["task"] == task and r["variant"] == "plain"]
        if not res or not plain:
            continue
        higher = res[0]["higher_is_better"]
        pick = max if higher else min
        a, b = pick(res, key=lambda r: r["mean"]), pick(plain, key=lambda r: r["mean"])
        diff = a["mean"] - b["mean"]
        noise = max(a["std"], b["std"])
        better = diff > 0 if higher else diff < 0
        verdict = "residual better" if better else "plain better"
        if min(a["seeds"], b["seeds"]) < 2:
            verdict += " (1 seed: spread unknown)"
        elif abs(diff) <= noise:
            verdict += " (within seed spread)"
        out.append({"task": task, "metric": a["metric"], "residual": a, "plain": b, "diff": diff, "verdict": verdict})
    return out


def _fmt(value: float, metric: str) -> str:
    """Four significant decimals for rates in [-1, 1] (top-1, mAP, WER), two for scores (dB, returns)."""
    return f"{value:.4f}" if abs(value) <= 1 else f"{value:.2f}"


def markdown(rows: list[dict[str, Any]], diffs: list[dict[str, Any]], root: Path) -> str:
    lines = ["# residual-suite report", "", f"Runs under `{root}`: {sum(r['seeds'] for r in rows)} runs, "
             f"{len(rows)} groups.", "",
             "| task | backbone | variant | metric | mean ± std | seeds | steps | train s | params | curves |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        spread = f"{_fmt(r['mean'], r['metric'])} ± {_fmt(r['std'], r['metric'])}"
        secs = f"{r['seconds']:.0f}" if r["seconds"] is not None else "-"
        params = f"{r['params'] / 1e6:.2f}M" if r["params"] else "-"
        links = " ".join(f"[{i + 1}]({p.resolve()})" for i, p in enumerate(r["curves"][:5])) or "-"
        lines.append(f"| {r['task']} | {r['backbone']} | {r['variant']} | {r['metric']} | {spread} | {r['seeds']} | "
                     f"{r['steps']} | {secs} | {params} | {links} |")
    if diffs:
        lines += ["", "## Residual minus plain, per domain", "",
                  "| task | metric | residual | plain | residual - plain | verdict |", "|---|---|---|---|---|---|"]
        for d in diffs:
            m = d["metric"]
            lines.append(f"| {d['task']} | {m} | {d['residual']['backbone']} {_fmt(d['residual']['mean'], m)} | "
                         f"{d['plain']['backbone']} {_fmt(d['plain']['mean'], m)} | {_fmt(d['diff'], m)} | "
                         f"{d['verdict']} |")
    return "\n".join(lines) + "\n"


def _html(md_text: str, figures: list[Path]) -> str:
    body = ["<html><head><meta charset='utf-8'><title>residual-suite report</title>",
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto}td,th{padding:2px 8px}"
            "table{border-collapse:collapse}tr:nth-child(even){background:#f3f3f3}</style></head><body>"]
    table_open = False
    for line in md_text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= {"-", " "}:
                continue
            if not table_open:
                body.append("<table>")
                table_open = True
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            continue
        if table_open:
            body.append("</table>")
            table_open = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{line.lstrip('# ')}</h{level}>")
        elif line.strip():
            body.append(f"<p>{line}</p>")
    if table_open:
        body.append("</table>")
    for fig in figures:
        data = base64.b64encode(fig.read_bytes()).decode()
        body.append(f"<h3>{fig.name}</h3><img style='max-width:100%' src='data:image/png;base64,{data}'>")
    return "\n".join(body) + "</body></html>\n"


def write_report(root: Path, out: Path | None = None, extra_figures: list[Path] | None = None) -> Path:
    """Write ``report.md``, ``report.html`` and ``headline.png`` into ``out`` (default ``root/report``)."""
    if not root.is_dir():
        raise UserError(f"{root} is not a folder; pass the runs/ folder that `rsuite train` writes into")
    runs = find_runs(root)
    if not runs:
        raise UserError(f"no run folders (run.json + metrics.jsonl) under {root}; train something first")
    out = out or root / "report"
    out.mkdir(parents=True, exist_ok=True)
    rows = summarize(runs)
    text = markdown(rows, residual_vs_plain(rows), root)
    (out / "report.md").write_text(text)
    figure = _plot(rows, out / "headline.png")
    (out / "report.html").write_text(_html(text, [figure, *(extra_figures or [])]))
    (out / "report.json").write_text(json.dumps([{k: v for k, v in r.items() if k != "curves"} for r in rows],
                                                indent=2))
    return out / "report.md"


def _plot(rows: list[dict[str, Any]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(1, len(tasks), figsize=(4.5 * len(tasks), 3.4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        mine = [r for r in rows if r["task"] == task]
        colors = ["tab:gray" if r["variant"] == "plain" else "tab:blue" for r in mine]
        ax.barh([f"{r['backbone']} ({r['variant']})" for r in mine], [r["mean"] for r in mine],
                xerr=[r["std"] for r in mine], color=colors)
        arrow = "higher" if mine[0]["higher_is_better"] else "lower"
        ax.set(title=f"{task}: {mine[0]['metric']} ({arrow} is better)")
        ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
