"""Residual-vs-plain studies: ``rsuite experiment degradation`` and ``rsuite experiment sweep``.

*degradation* reproduces He et al. (2015) Fig. 6 in miniature: plain and residual CIFAR-style
nets at two depths, identical settings and seeds; it plots training loss and validation
top-1 of all of them on one figure (the deeper plain net trains *worse*, the deeper residual
net does not) and the per-block gradient norms at initialisation and after training.
*sweep* runs the same residual/plain switch in every domain with each task's own small
budget. Both leave ordinary run folders, so ``rsuite report`` reads them like any other.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

import torch

from backbones import diagnostics
from tasks import api
from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.core.report import write_report
from tasks.core.runlog import read_jsonl
from tasks.registry import TASKS, load_task

CIFAR_DEPTHS = (20, 32, 44, 56, 110)
STYLE = {"residual": "-", "plain": "--"}


def _variant_overrides(variant: str) -> list[str]:
    if variant not in STYLE:
        raise UserError(f"variant {variant!r} is not valid; choose residual or plain")
    return [f"backbone.shortcut={'identity' if variant == 'residual' else 'none'}"]


def _train_loss(run: Path, tail: int = 3) -> float:
    """Final training loss: mean of the last ``tail`` logged windows (less noisy than one batch)."""
    records = read_jsonl(run / "train.jsonl")
    return statistics.fmean(r["train/loss"] for r in records[-tail:])


def _block_gradients(run: Path, trained: bool) -> list[float]:
    """Per-block gradient norms on a fixed training batch, at initialisation or after training."""
    loaded = api.load_run(run, "last")
    task, cfg = loaded.task, loaded.cfg
    model = loaded.model
    if not trained:
        torch.manual_seed(cfg.seed)
        model = task.build_model(cfg, loaded.info)
    data = task.build_data(cfg)
    images, labels = zip(*(data.train[i] for i in range(min(128, len(data.train)))))
    model.train()
    loss = torch.nn.functional.cross_entropy(model(torch.stack(images)), torch.stack(labels))
    return list(diagnostics.gradient_norms(model, loss).values())


def degradation(depths: list[int], seeds: list[int], steps: int, out: Path | None = None,
                config: str | Path | None = None, overrides: list[str] | None = None) -> Path:
    """Train plain and residual nets at each depth and seed; write figures, table and report."""
    bad = [d for d in depths if d not in CIFAR_DEPTHS]
    if bad or len(depths) < 1:
        raise UserError(f"--depths {bad} not valid; choose from {', '.join(map(str, CIFAR_DEPTHS))}")
    task = load_task("classification")
    root = out or Path("runs") / "experiments" / f"degradation-{time.strftime('%Y%m%d-%H%M%S')}"
    if not any(o.startswith("data.limit_val=") for o in overrides or []):
        overrides = ["data.limit_val=2000", *(overrides or [])]  # 2,000 test images: evaluation stays cheap
    load_config(task.config_class, task.recipe_path(config), overrides or [])  # fail fast
    runs: dict[tuple[int, str], list[Path]] = {}
    for depth in depths:
        for variant in ("residual", "plain"):
            for seed in seeds:
                print(f"[degradation] {variant} depth {depth} seed {seed}", file=sys.stderr)
                settings = [f"backbone.name=resnet{depth}", *_variant_overrides(variant), f"seed={seed}",
                            f"trainer.max_steps={steps}", f"trainer.eval_every={max(1, steps // 4)}",
                            "trainer.log_every=10", f"trainer.runs_dir={root}",
                            f"trainer.run_name={variant}{depth}-seed{seed}", *(overrides or [])]
                runs.setdefault((depth, variant), []).append(api.train(task, settings, recipe=config).dir)
    grads = {f"{v}{d}": (_block_gradients(r[0], False), _block_gradients(r[0], True))
             for (d, v), r in runs.items()}
    figures = [_plot_curves(runs, root / "degradation.png"), _plot_gradients(grads, root / "gradients.png")]
    table = _table(runs, grads)
    (root / "degradation.md").write_text(table)
    (root / "degradation.json").write_text(json.dumps(
        {f"{v}{d}": {"train_loss": [_train_loss(p) for p in r], "top1": [_top1(p) for p in r],
                     "grad_init": grads[f"{v}{d}"][0], "grad_trained": grads[f"{v}{d}"][1]}
         for (d, v), r in runs.items()}, indent=2))
    print(table, file=sys.stderr)
    write_report(root, extra_figures=figures)
    return root


def _top1(run: Path) -> float:
    return read_jsonl(run / "metrics.jsonl")[-1]["val/top1"]


def _stat(values: list[float], fmt: str) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{format(statistics.fmean(values), fmt)} ± {format(spread, fmt)}"


def _table(runs: dict[tuple[int, str], list[Path]], grads: dict[str, tuple[list[float], list[float]]]) -> str:
    lines = ["| net | seeds | final train loss | val top-1 | grad first/last block, init | after training |",
             "|---|---|---|---|---|---|"]
    for (depth, variant), paths in sorted(runs.items()):
        init, trained = grads[f"{variant}{depth}"]
        lines.append(f"| {variant}{depth} | {len(paths)} | {_stat([_train_loss(p) for p in paths], '.3f')} | "
                     f"{_stat([_top1(p) for p in paths], '.4f')} | {diagnostics.first_last_ratio(init):.3g} | "
                     f"{diagnostics.first_last_ratio(trained):.3g} |")
    return "\n".join(lines) + "\n"


def _plot_curves(runs: dict[tuple[int, str], list[Path]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    colors = dict(zip(sorted({d for d, _ in runs}), ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange")))
    for (depth, variant), paths in sorted(runs.items()):
        style = {"color": colors[depth], "linestyle": STYLE[variant], "label": f"{variant}{depth}"}
        curves = [read_jsonl(p / "train.jsonl") for p in paths]
        n = min(len(c) for c in curves)
        steps = [r["step"] for r in curves[0][:n]]
        losses = torch.tensor([[r["train/loss"] for r in c[:n]] for c in curves])
        ax_loss.plot(steps, losses.mean(0), **style)
        ax_loss.fill_between(steps, losses.min(0).values, losses.max(0).values, color=colors[depth], alpha=0.12)
        evals = [read_jsonl(p / "metrics.jsonl") for p in paths]
        m = min(len(e) for e in evals)
        acc = torch.tensor([[r["val/top1"] for r in e[:m]] for e in evals])
        ax_acc.errorbar([r["step"] for r in evals[0][:m]], acc.mean(0), yerr=acc.std(0) if len(paths) > 1 else None,
                        marker="o", capsize=3, **style)
    ax_loss.set(xlabel="step", ylabel="training loss", title="training loss (mean, min-max over seeds)")
    ax_loss.set_yscale("log")
    ax_acc.set(xlabel="step", ylabel="validation top-1", title="validation top-1 (mean ± std)")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plot_gradients(grads: dict[str, tuple[list[float], list[float]]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, index, title in ((axes[0], 0, "at initialisation"), (axes[1], 1, "after training")):
        for name, pair in sorted(grads.items()):
            ax.plot(range(1, len(pair[index]) + 1), pair[index], linestyle="--" if name.startswith("plain") else "-",
                    label=name)
        ax.set(xlabel="residual block (input -> output)", title=f"per-block gradient norm, {title}")
        ax.set_yscale("log")
        ax.legend()
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("gradient L2 norm")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def sweep(tasks: list[str], variants: list[str], budget: str, seeds: list[int], out: Path | None = None) -> Path:
    """The residual/plain switch in every domain at each task's ``budget``; returns the report."""
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise UserError(f"unknown task(s) {', '.join(unknown)}; choose from {', '.join(TASKS)}")
    root = out or Path("runs") / "experiments" / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}"
    plans = {name: api.train_overrides(name, budget) for name in tasks}  # every budget checked before training
    for name, (recipe, settings) in plans.items():
        for variant in variants:
            overrides = _variant_overrides(variant)
            for seed in seeds:
                print(f"[sweep] {name} {variant} seed {seed}", file=sys.stderr)
                api.train(name, {**settings, **dict(o.split("=", 1) for o in overrides), "seed": seed,
                                 "trainer.runs_dir": str(root), "trainer.run_name": f"{variant}-seed{seed}"},
                          recipe=recipe)
    return write_report(root)
