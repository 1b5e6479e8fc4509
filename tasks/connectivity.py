"""``rsuite experiment connectivity``: sum vs concatenation vs fractal vs attention, each beside its plain analog.

Eight Fashion-MNIST classifiers of equal trunk depth (19 or 20 3x3 convolutions on the
longest input-to-output trunk path, plus a linear head), trained with the same recipe
(``fashion_mnist_resnet20``: SGD + one-cycle, batch 128, no augmentation) and the same CPU
budget, for each seed:

============  ================================  =============================================
family        connected                         plain analog (what it removes)
============  ================================  =============================================
residual      ``resnet20`` (sum)                ``plain20``: no identity shortcuts
dense         ``densenet_bc_40_k12`` (concat)   ``plain_densenet_bc_40_k12``: each layer sees
                                                only its predecessor (same layer widths)
fractal       ``fractalnet_cifar`` (mean joins) ``plain_fractalnet_cifar``: the deepest column
              B=5, C=3, width 0.25              alone
attention     ``attention20_cifar``: resnet20   the same with ``shortcut=none`` and
              + a soft mask per stage,          ``attention_residual=false``: ``M * T`` and
              ``(1 + M) * T``                   plain units, no identity anywhere
============  ================================  =============================================

**Budget.** Every run gets the same CPU time for training (``cpu_seconds``, default 28 CPU
seconds, all threads together): the CPU time of one step of each net is measured first on a
real batch (``time.process_time``, median of a few steps after warm-up) and its run is given
``cpu_seconds / step CPU time`` steps, every seed of a net the same count. Process CPU time
depends less than wall time on other processes sharing the machine (a wall-clock calibration
is off by the load factor). ``steps`` instead gives every run the same number of steps. The
table reports the steps, the calibrated CPU time per step and the wall time the runs took.

Reported per net (mean ± std over seeds): final training loss (mean of the last three logged
windows), validation top-1 (2,000 test images), parameters, step time, training seconds, and
the per-block gradient norms at initialisation (``backbones.diagnostics.gradient_norms`` on a
fixed batch of 128 training images, train mode, each seed's init); the figure plots them
against relative depth, since the families have different block counts. Runs are ordinary
run folders, so ``rsuite report`` reads them too.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from backbones import diagnostics
from tasks import api
from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.core.report import write_report
from tasks.core.runlog import read_jsonl, save_figure
from tasks.registry import load_task

#: training CPU seconds per run by default: 8 nets x 3 seeds, with evaluation, take about 15 CPU minutes
DEFAULT_CPU_SECONDS = 28.0
#: no run gets fewer steps than this, whatever its step time
MIN_STEPS = 10
COLORS = {"residual": "tab:blue", "dense": "tab:green", "fractal": "tab:orange", "attention": "tab:purple"}


@dataclass(frozen=True)
class Net:
    """One trained configuration: its label, family, whether it is the plain analog, and its overrides."""

    key: str
    family: str
    plain: bool
    overrides: tuple[str, ...] = field(default_factory=tuple)


# Families without residual blocks take no zero_init_last (the recipe sets it false for resnet20): unset it.
_NO_ZERO_INIT = "backbone.zero_init_last=null"
NETS: tuple[Net, ...] = (
    Net("resnet20", "residual", False, ("backbone.name=resnet20",)),
    Net("plain20", "residual", True, ("backbone.name=plain20",)),
    Net("densenet_bc_40_k12", "dense", False, ("backbone.name=densenet_bc_40_k12", _NO_ZERO_INIT)),
    Net("plain_densenet_bc_40_k12", "dense", True, ("backbone.name=plain_densenet_bc_40_k12", _NO_ZERO_INIT)),
    Net("fractalnet", "fractal", False,
        ("backbone.name=fractalnet_cifar", "backbone.options.width=0.25", _NO_ZERO_INIT)),
    Net("plain_fractalnet", "fractal", True,
        ("backbone.name=plain_fractalnet_cifar", "backbone.options.width=0.25", _NO_ZERO_INIT)),
    Net("attention20", "attention", False, ("backbone.name=attention20_cifar",)),
    Net("plain_attention20", "attention", True,
        ("backbone.name=attention20_cifar", "backbone.shortcut=none", "backbone.options.attention_residual=false")),
)


def _probe_batch(task: Any, cfg: Any) -> tuple[tuple[torch.Tensor, torch.Tensor], dict[str, Any]]:
    """The first ``batch_size`` training examples (a fixed batch for the probes and the timing), and data info."""
    data = task.build_data(cfg)
    images, labels = zip(*(data.train[i] for i in range(min(cfg.data.batch_size, len(data.train)))))
    return (torch.stack(images), torch.stack(labels)), data.info


def _init_gradients(task: Any, cfg: Any, info: dict, batch: tuple[torch.Tensor, torch.Tensor]) -> list[float]:
    """Per-block gradient norms of the seed's initialisation on ``batch`` (train mode, cross-entropy)."""
    torch.manual_seed(cfg.seed)
    model = task.build_model(cfg, info).train()
    loss = torch.nn.functional.cross_entropy(model(batch[0]), batch[1])
    return list(diagnostics.gradient_norms(model, loss).values())


def _step_cpu_seconds(task: Any, cfg: Any, info: dict, batch: tuple[torch.Tensor, torch.Tensor],
                      repeats: int = 5) -> float:
    """Median process CPU seconds (all threads) of one SGD step of the net on ``batch``, after two warm-ups."""
    torch.manual_seed(cfg.seed)
    model = task.build_model(cfg, info).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=cfg.optim.momentum)
    times = []
    for i in range(repeats + 2):
        start = time.process_time()
        loss = torch.nn.functional.cross_entropy(model(batch[0]), batch[1])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.process_time() - start)
    return statistics.median(times)


def _train_loss(run: Path, tail: int = 3) -> float:
    records = read_jsonl(run / "train.jsonl")
    return statistics.fmean(r["train/loss"] for r in records[-tail:])


def _final(run: Path) -> dict[str, Any]:
    return read_jsonl(run / "metrics.jsonl")[-1]


def _stat(values: list[float], fmt: str) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{format(statistics.fmean(values), fmt)} ± {format(spread, fmt)}"


def connectivity(seeds: list[int], cpu_seconds: float = DEFAULT_CPU_SECONDS, steps: int | None = None,
                 out: Path | None = None, overrides: list[str] | None = None,
                 nets: tuple[Net, ...] = NETS) -> Path:
    """Train every net of ``nets`` for each seed at an equal CPU budget; write table, figures and report.

    ``cpu_seconds`` is the training CPU time each run gets (converted to steps per net from its
    measured CPU time per step); ``steps`` overrides it with one step count for all. ``overrides`` (``key=value``)
    apply to every run, e.g. ``data.limit_train=...``. Returns the experiment folder.
    """
    if not seeds:
        raise UserError("--seeds is empty; give at least one seed, e.g. 0,1,2")
    if steps is None and not cpu_seconds > 0:
        raise UserError(f"--cpu-seconds {cpu_seconds} is not valid; give a positive training CPU time per run")
    if steps is not None and steps < 1:
        raise UserError(f"--steps {steps} is not valid; give a positive step count")
    task = load_task("classification")
    root = out or Path("runs") / "experiments" / f"connectivity-{time.strftime('%Y%m%d-%H%M%S')}"
    base = [*(["data.limit_val=2000"] if not any(o.startswith("data.limit_val=") for o in overrides or []) else []),
            *(overrides or [])]

    def config(net: Net, seed: int) -> Any:
        return load_config(task.config_class, task.recipe_path(None), [*net.overrides, *base, f"seed={seed}"])

    configs = {net.key: config(net, seeds[0]) for net in nets}  # every config checked before anything trains
    batch, info = _probe_batch(task, configs[nets[0].key])
    # Every net is built here (a bad option fails before any training), probed and timed.
    grads: dict[str, list[list[float]]] = {}
    plan: dict[str, dict[str, Any]] = {}
    for net in nets:
        print(f"[connectivity] probing {net.key}: gradients at init" + (", step time" if steps is None else ""),
              file=sys.stderr)
        grads[net.key] = [_init_gradients(task, config(net, s), info, batch) for s in seeds]
        if steps is None:  # the equal-time budget needs each net's step time; a step count does not
            step_cpu = _step_cpu_seconds(task, configs[net.key], info, batch)
            plan[net.key] = {"step_cpu_s": step_cpu, "steps": max(MIN_STEPS, int(cpu_seconds / step_cpu))}
        else:
            plan[net.key] = {"step_cpu_s": None, "steps": steps}

    runs: dict[str, list[Path]] = {net.key: [] for net in nets}
    total = len(seeds) * len(nets)
    for i, seed in enumerate(seeds):  # seed-major: a stopped study still has every net
        for j, net in enumerate(nets):
            n = int(plan[net.key]["steps"])
            print(f"[connectivity] {i * len(nets) + j + 1}/{total} {net.key} seed {seed}: {n} steps",
                  file=sys.stderr)
            settings = [*net.overrides, f"seed={seed}", f"trainer.max_steps={n}", f"trainer.eval_every={n}",
                        f"trainer.log_every={max(1, n // 20)}", f"trainer.runs_dir={root}",
                        f"trainer.run_name={net.key}-seed{seed}", *base]
            runs[net.key].append(api.train(task, settings).dir)

    result = _collect(nets, runs, grads, plan)
    meta = {"seeds": seeds, "cpu_seconds_per_run": None if steps else cpu_seconds, "steps": steps,
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip() + f", {os.cpu_count()} CPUs, "
                       f"torch {torch.__version__} with {torch.get_num_threads()} threads",
            "overrides": base}
    table = _table(nets, result, meta)
    (root / "connectivity.md").write_text(table)
    (root / "connectivity.json").write_text(json.dumps({"meta": meta, "nets": result}, indent=2))
    figures = [_plot_training(nets, runs, result, root / "connectivity.png"),
               _plot_gradients(nets, result, root / "gradients.png")]
    print(table, file=sys.stderr)
    write_report(root, extra_figures=figures)
    return root


def _collect(nets: tuple[Net, ...], runs: dict[str, list[Path]], grads: dict[str, list[list[float]]],
             plan: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    result = {}
    for net in nets:
        paths = runs[net.key]
        finals = [_final(p) for p in paths]
        per_block = [statistics.fmean(v) for v in zip(*grads[net.key])]
        result[net.key] = {
            "family": net.family, "plain": net.plain, "overrides": list(net.overrides),
            "runs": [str(p) for p in paths], "steps": int(plan[net.key]["steps"]),
            "step_cpu_s": plan[net.key]["step_cpu_s"],
            "step_s": [f["train_seconds"] / f["step"] for f in finals],
            "train_seconds": [f["train_seconds"] for f in finals], "params": finals[0]["params"],
            "train_loss": [_train_loss(p) for p in paths], "top1": [f["val/top1"] for f in finals],
            "grad_init": grads[net.key], "grad_init_mean": per_block,
            "grad_first_last": [diagnostics.first_last_ratio(g) for g in grads[net.key]],
        }
    return result


def _table(nets: tuple[Net, ...], result: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    budget = (f"{meta['steps']} steps per run" if meta["steps"] else
              f"{meta['cpu_seconds_per_run']:g} CPU seconds of training per run (steps = CPU seconds / measured "
              "CPU time per step)")
    lines = [f"Budget: {budget}; seeds {', '.join(map(str, meta['seeds']))}; machine: {meta['machine']}.", "",
             "| family | net | plain analog | params | steps | CPU ms/step | wall ms/step | train wall s | "
             "final train loss | val top-1 | blocks | grad first/last block, init |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for net in nets:
        r = result[net.key]
        lines.append(
            f"| {net.family} | {net.key} | {'yes' if net.plain else 'no'} | {r['params'] / 1e6:.3f}M | {r['steps']} | "
            f"{'-' if r['step_cpu_s'] is None else format(r['step_cpu_s'] * 1000, '.0f')} | "
            f"{_stat([s * 1000 for s in r['step_s']], '.0f')} | {_stat(r['train_seconds'], '.1f')} | "
            f"{_stat(r['train_loss'], '.3f')} | {_stat(r['top1'], '.4f')} | {len(r['grad_init_mean'])} | "
            f"{_stat(r['grad_first_last'], '.3g')} |")
    return "\n".join(lines) + "\n"


def _style(net: Net) -> dict[str, Any]:
    return {"color": COLORS.get(net.family, "tab:gray"), "linestyle": "--" if net.plain else "-", "label": net.key}


def _plot_training(nets: tuple[Net, ...], runs: dict[str, list[Path]], result: dict[str, dict[str, Any]],
                   path: Path) -> Path:
    """Training loss against wall seconds of training (mean over seeds), and validation top-1 per net."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5))
    for net in nets:
        curves = [read_jsonl(p / "train.jsonl") for p in runs[net.key]]
        n = min(len(c) for c in curves)
        step_s = statistics.fmean(result[net.key]["step_s"])
        seconds = [r["step"] * step_s for r in curves[0][:n]]
        losses = torch.tensor([[r["train/loss"] for r in c[:n]] for c in curves])
        ax_loss.plot(seconds, losses.mean(0), **_style(net))
    ax_loss.set(xlabel="training wall seconds (step x the run's wall time per step)", ylabel="training loss",
                title="training loss, mean over seeds")
    ax_loss.set_yscale("log")
    ax_loss.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)
    keys = [net.key for net in nets]
    top1 = [result[k]["top1"] for k in keys]
    ax_acc.barh(keys, [statistics.fmean(t) for t in top1],
                xerr=[statistics.stdev(t) if len(t) > 1 else 0.0 for t in top1],
                color=[COLORS.get(net.family, "tab:gray") for net in nets], capsize=3)
    for bar, net in zip(ax_acc.patches, nets):
        if net.plain:
            bar.set_hatch("//")
            bar.set_alpha(0.6)
    ax_acc.set(xlabel="validation top-1 (mean ± std over seeds; hatched: plain analog)", title="top-1")
    ax_acc.invert_yaxis()
    lo = min(min(t) for t in top1)
    ax_acc.set_xlim(max(0.0, lo - 0.1), 1.0)
    ax_acc.grid(alpha=0.3, axis="x")
    return save_figure(fig, path, dpi=120)


def _plot_gradients(nets: tuple[Net, ...], result: dict[str, dict[str, Any]], path: Path) -> Path:
    """Per-block gradient norm at initialisation (mean over seeds) against relative depth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for net in nets:
        values = result[net.key]["grad_init_mean"]
        xs = [i / max(1, len(values) - 1) for i in range(len(values))]
        ax.plot(xs, values, marker=".", **_style(net))
    ax.set(xlabel="relative depth of the block (0 = input, 1 = output)", ylabel="gradient L2 norm",
           title="per-block gradient norm at initialisation (mean over seeds)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=120)
