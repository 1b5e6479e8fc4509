"""``rsuite experiment depth-refinement``: does a residual net refine like an ODE solver when given more steps?

A residual block ``x + F(x)`` is one explicit Euler step of ``dx/dt = f(x)``. If that reading
holds, a net trained with ``N`` steps should keep (or improve) its accuracy when the same ``f``
is integrated with more, smaller steps, and degrade gracefully with fewer. Two halves:

**Images** (Fashion-MNIST, the classification task's default recipe and data; 2,000 test
images for evaluation). For each seed, two nets of the same depth are trained with ``N`` steps:

- ``odenet``: the ODE-Net (a stride-4 stem, then one ODE block whose ``f`` is a pre-activation
  basic block's branch, FiLM time input), integrated with fixed-step Euler, ``steps=N`` over
  ``[0, T=1]``;
- ``resnet``: ``impala_cnn`` with one stack (``channels=[W]``): conv + max-pool, then ``N``
  untied residual blocks ``x + norm(conv(relu(norm(conv(relu(x))))))``.

Both use batch norm (``backbone.norm=batch``). The ODE-Net's default, group norm, has one
channel per group at ``W = 32`` (an instance norm), and its head pools ``relu(norm(x))``:
the pooled features hardly depend on the image, and at this budget it trained to 68% top-1
(300 steps) against 81% with batch norm (250 steps, seed 0). In evaluation batch norm is a
fixed affine map (running statistics), so the repeat/skip and ``T/k`` rules change nothing else.

Why IMPALA's net: every one of its stages is a transition (conv + pool) followed by exactly
``blocks_per_stack`` shape-preserving residual blocks, so "``N`` residual blocks in the stage"
is exactly "``N`` Euler steps in the ODE block": both stages make ``N`` residual updates, each
two 3x3 convs at ``W`` channels. A CIFAR-style ResNet puts a strided projection block at the
head of its later stages (its ``N`` blocks per stage are one transition plus ``N - 1``
updates), and ``resmlp`` is a vector net. The stems differ: ODE-Net's stride-4 stem (Chen et
al. 2018) integrates at 7x7, IMPALA's conv + pool at 14x14.

Both are then evaluated with ``k`` in ``N/2, N, 2N, 4N`` steps:

- the ODE net reuses its one ``f`` with step ``T/k`` (its blocks' ``steps`` set to ``k``);
- the ResNet cannot change its step, so it repeats or skips blocks: evaluation step ``j`` of
  ``k`` (``j = 0..k-1``) applies block ``floor(j * N / k)``, the block whose depth interval
  ``[i/N, (i+1)/N)`` holds the step's start ``j/k``, the point where explicit Euler evaluates
  ``f`` (``k = 2N``: every block twice; ``k = N/2``: blocks 0, 2, 4, ...);
- ``resnet, branch x N/k``: the same schedule with each branch scaled by ``N/k``, the ResNet
  read as an Euler discretisation of a (piecewise-constant in depth) ODE: the step it would
  take if its blocks were ``f`` sampled at unit step. An evaluation rule only, no training.

Reported: validation top-1 against ``k``, mean ± std over seeds (table and figure).

**Dynamics** (``tasks/dynamics``, see :mod:`tasks.depth_refinement_dynamics`): residual and
plain one-step models trained at the sampling step ``Δt``; the residual model is rolled out at
``Δt`` and at ``Δt/2`` (two half steps of its learned ``f``), the plain one only at ``Δt``.

**Budget.** The default (``N = 4``, ``W = 32``, 250 training steps per image run, 1,000 per
dynamics run, pendulum and Lorenz, seeds 0, 1, 2: 18 runs) took 8 min 56 s wall (532 CPU
seconds) on a 2-core x86_64 CPU. Runs are ordinary run folders under the experiment folder, so
``rsuite report`` reads them too.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from backbones.blocks import ResidualBlock
from backbones.ode import FIXED_GRID, ode_blocks
from tasks import api
from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.core.report import write_report
from tasks.core.runlog import read_jsonl, save_figure
from tasks.registry import load_task

#: training depth N: both nets make N residual updates in their stage
DEFAULT_BLOCKS = 4
#: channels of the stage (both nets)
DEFAULT_WIDTH = 32
#: training steps per image run (batch 128): the 6 runs with their scoring took about 6 minutes on 2 cores
DEFAULT_IMAGE_STEPS = 250
#: validation images each net is scored on, at every step count
DEFAULT_VAL_IMAGES = 2000
PARTS = ("images", "dynamics", "all")
COLORS = {"odenet": "tab:blue", "resnet": "tab:red", "resnet_scaled": "tab:orange",
          "residual": "tab:blue", "plain": "tab:gray"}


def step_counts(blocks: int) -> list[int]:
    """The evaluation step counts ``N/2, N, 2N, 4N`` for training depth ``N`` (an even number)."""
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 2 or blocks % 2:
        raise UserError(f"--blocks {blocks} is not valid; give an even training depth >= 2 (N/2 must be whole)")
    return [blocks // 2, blocks, 2 * blocks, 4 * blocks]


def block_schedule(blocks: int, k: int) -> list[int]:
    """Which of ``blocks`` trained blocks each of ``k`` evaluation steps applies: ``floor(j * blocks / k)``.

    Step ``j`` starts at depth ``j/k``; the block whose interval ``[i/N, (i+1)/N)`` holds it is the
    ResNet's stand-in for ``f`` there (explicit Euler evaluates ``f`` at the step's start). ``k``
    a multiple of ``N`` repeats every block ``k/N`` times; ``N`` a multiple of ``k`` keeps every
    ``N/k``-th block, the first included.
    """
    if blocks < 1 or k < 1:
        raise ValueError(f"blocks={blocks}, k={k} are not valid; give positive integers")
    return [j * blocks // k for j in range(k)]


def check_images(blocks: int, steps: int, width: int) -> list[int]:
    """The evaluation step counts, after a one-line error for a bad depth, step budget or width."""
    counts = step_counts(blocks)
    if steps < 1:
        raise UserError(f"--steps {steps} is not valid; give a positive number of training steps per run")
    if width < 1:
        raise UserError(f"width {width} is not valid; give a positive channel count")
    return counts


def image_nets(blocks: int, width: int) -> dict[str, list[str]]:
    """The overrides of the two trained image nets (``odenet``, ``resnet``) at depth ``blocks``."""
    return {
        "odenet": ["backbone.name=odenet", f"backbone.options.width={width}", "backbone.options.solver=euler",
                   f"backbone.options.steps={blocks}", "backbone.norm=batch"],
        "resnet": ["backbone.name=impala_cnn", f"backbone.options.channels=[{width}]",
                   f"backbone.options.blocks_per_stack={blocks}", "backbone.norm=batch"],
    }


class _ScaledStep(nn.Module):
    """``x + scale * F(x)`` with ``F`` the branch of an identity-shortcut residual block."""

    def __init__(self, block: ResidualBlock, scale: float) -> None:
        super().__init__()
        self.block, self.scale = block, scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.scale * self.block.branch(x)


def _stage_blocks(stage: nn.Module) -> tuple[list[nn.Module], list[ResidualBlock]]:
    """A stage's leading layers (transition) and its trailing run of shape-preserving residual blocks."""
    layers = list(stage.children()) if isinstance(stage, nn.Sequential) else []
    first = next((i for i, m in enumerate(layers) if isinstance(m, ResidualBlock)), len(layers))
    blocks = layers[first:]
    if not blocks or not all(isinstance(b, ResidualBlock) and b.downsample is None for b in blocks):
        raise ValueError(f"{type(stage).__name__} is not a transition followed by identity-shortcut residual "
                         "blocks; the repeat/skip rule needs such a stage")
    return layers[:first], blocks  # type: ignore[return-value]


@contextmanager
def resnet_at_steps(model: nn.Module, k: int, scaled: bool = False) -> Iterator[nn.Module]:
    """``model`` (a Classifier over a staged ResNet) with each stage's ``N`` blocks applied ``k`` times.

    Block order follows :func:`block_schedule`; ``scaled`` multiplies every branch by ``N/k``
    (an Euler step of the ODE the blocks sample). The stages are restored on exit.
    """
    body = model.backbone
    saved = {name: getattr(body, name) for name in body.stage_names()}
    try:
        for name, stage in saved.items():
            prefix, blocks = _stage_blocks(stage)
            n = len(blocks)
            for block in blocks:
                if block.post_activation or block.opts.residual_scale != 1.0:
                    raise ValueError("the repeat/skip rule needs blocks x + F(x) (no activation after the add, "
                                     "residual_scale 1)")
            steps = [_ScaledStep(blocks[i], n / k) if scaled else blocks[i] for i in block_schedule(n, k)]
            setattr(body, name, nn.Sequential(*prefix, *steps))
        yield model
    finally:
        for name, stage in saved.items():
            setattr(body, name, stage)


@contextmanager
def ode_at_steps(model: nn.Module, k: int) -> Iterator[nn.Module]:
    """``model`` with every ODE block integrating its ``f`` in ``k`` fixed steps of ``T/k``; restored on exit."""
    blocks = ode_blocks(model)
    if not blocks or any(b.solver not in FIXED_GRID for b in blocks):
        raise ValueError("ode_at_steps needs ODE blocks with a fixed-grid solver (euler, midpoint, rk4)")
    saved = [b.steps for b in blocks]
    try:
        for b in blocks:
            b.steps = k
        yield model
    finally:
        for b, s in zip(blocks, saved):
            b.steps = s


@torch.no_grad()
def top1(model: nn.Module, loader: torch.utils.data.DataLoader, device: torch.device) -> float:
    """Top-1 accuracy of ``model`` (eval mode) over ``loader``."""
    model.eval()
    right = total = 0
    for images, labels in loader:
        logits = model(images.to(device))
        right += int((logits.argmax(1).cpu() == labels).sum())
        total += len(labels)
    return right / total


def _evaluate_run(run_dir: Path, rules: list[str], counts: list[int]) -> dict[str, dict[int, float]]:
    """Top-1 of one trained run under each evaluation rule at each step count."""
    loaded = api.load_run(run_dir)
    data = loaded.task.build_data(loaded.cfg)
    loader = torch.utils.data.DataLoader(data.val, batch_size=256)
    scores: dict[str, dict[int, float]] = {}
    for rule in rules:
        scores[rule] = {}
        for k in counts:
            if rule == "odenet":
                context = ode_at_steps(loaded.model, k)
            else:
                context = resnet_at_steps(loaded.model, k, scaled=rule == "resnet_scaled")
            with context as model:
                scores[rule][k] = top1(model, loader, loaded.device)
    return scores


def _machine() -> str:
    return (f"{platform.machine()} {platform.processor() or ''}".strip() + f", {os.cpu_count()} CPUs, "
            f"torch {torch.__version__} with {torch.get_num_threads()} threads")


def _stat(values: list[float], fmt: str) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{format(statistics.fmean(values), fmt)} ± {format(spread, fmt)}"


#: evaluation rows of the images half: (row key, trained net, how it takes k steps)
IMAGE_ROWS = (("odenet", "odenet", "one f, step T/k"),
              ("resnet", "resnet", "repeat/skip blocks: step j applies block floor(jN/k)"),
              ("resnet_scaled", "resnet", "repeat/skip blocks, branch x N/k"))


def run_images(seeds: list[int], root: Path, blocks: int = DEFAULT_BLOCKS, steps: int = DEFAULT_IMAGE_STEPS,
               width: int = DEFAULT_WIDTH, overrides: list[str] | None = None) -> dict[str, Any]:
    """Train both image nets for each seed, score every evaluation rule at ``N/2..4N`` steps; the result dict."""
    counts = check_images(blocks, steps, width)
    task = load_task("classification")
    overrides = list(overrides or [])
    base = [*([f"data.limit_val={DEFAULT_VAL_IMAGES}"] if not any(o.startswith("data.limit_val=") for o in overrides)
              else []), *overrides]
    nets = image_nets(blocks, width)
    for net in nets.values():  # every config checked before anything trains
        load_config(task.config_class, task.recipe_path(None), [*net, *base, f"seed={seeds[0]}"])
    runs: dict[str, list[Path]] = {key: [] for key in nets}
    total = len(seeds) * len(nets)
    for i, seed in enumerate(seeds):  # seed-major: a stopped study still has both nets
        for j, (key, net) in enumerate(nets.items()):
            print(f"[depth-refinement] images {i * len(nets) + j + 1}/{total}: {key} (N={blocks}) seed {seed}, "
                  f"{steps} steps", file=sys.stderr)
            settings = [*net, f"seed={seed}", f"trainer.max_steps={steps}", f"trainer.eval_every={steps}",
                        f"trainer.log_every={max(1, steps // 20)}", f"trainer.runs_dir={root / 'images'}",
                        f"trainer.run_name={key}-seed{seed}", *base]
            runs[key].append(api.train(task, settings).dir)
    rows: dict[str, dict[str, Any]] = {}
    for key, net, rule in IMAGE_ROWS:
        rows[key] = {"net": net, "rule": rule, "runs": [str(p) for p in runs[net]],
                     "top1": {k: [] for k in counts}}
    for net in nets:
        rules = [key for key, owner, _ in IMAGE_ROWS if owner == net]
        for n, run in enumerate(runs[net]):
            print(f"[depth-refinement] images: scoring {net} seed {seeds[n]} at {counts} steps", file=sys.stderr)
            for rule, by_k in _evaluate_run(run, rules, counts).items():
                for k, value in by_k.items():
                    rows[rule]["top1"][k].append(value)
        finals = [read_jsonl(run / "metrics.jsonl")[-1] for run in runs[net]]
        for key, owner, _ in IMAGE_ROWS:
            if owner == net:
                rows[key].update(params=finals[0]["params"], train_seconds=[f["train_seconds"] for f in finals],
                                 trained_top1=[f["val/top1"] for f in finals])
    return {"blocks": blocks, "width": width, "train_steps": steps, "counts": counts, "overrides": base,
            "rows": rows}


def images_table(result: dict[str, Any]) -> str:
    """Markdown: one row per evaluation rule, top-1 (mean ± std over seeds) per step count."""
    counts, n = result["counts"], result["blocks"]
    head = " | ".join(f"k={k}" + (" (trained)" if k == n else "") for k in counts)
    lines = [f"| net | how it takes k steps | params | train wall s | {head} |",
             "|---|---|---|---|" + "---|" * len(counts)]
    for key, row in result["rows"].items():
        cells = " | ".join(_stat(row["top1"][k], ".4f") for k in counts)
        lines.append(f"| {key} | {row['rule']} | {row['params'] / 1e3:.1f}k | {_stat(row['train_seconds'], '.0f')} | "
                     f"{cells} |")
    return "\n".join(lines) + "\n"


def plot_images(result: dict[str, Any], path: Path) -> Path:
    """Validation top-1 against evaluation steps (log2 axis), mean ± std over seeds; the trained N marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = result["counts"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for key, row in result["rows"].items():
        means = [statistics.fmean(row["top1"][k]) for k in counts]
        spread = [statistics.stdev(row["top1"][k]) if len(row["top1"][k]) > 1 else 0.0 for k in counts]
        ax.errorbar(counts, means, yerr=spread, marker="o", capsize=3, color=COLORS.get(key, "tab:gray"),
                    linestyle="--" if key == "resnet_scaled" else "-", label=f"{key}: {row['rule']}")
    ax.axvline(result["blocks"], color="k", alpha=0.3, linestyle=":", label=f"trained with N={result['blocks']}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(counts, [str(k) for k in counts])
    ax.set(xlabel="evaluation steps k (residual updates in the stage)", ylabel="validation top-1",
           title="Fashion-MNIST: accuracy vs evaluation steps (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path, dpi=120)


def depth_refinement(seeds: list[int], part: str = "all", blocks: int = DEFAULT_BLOCKS,
                     steps: int = DEFAULT_IMAGE_STEPS, out: Path | None = None,
                     overrides: list[str] | None = None, dynamics_overrides: list[str] | None = None,
                     systems: tuple[str, ...] | None = None, width: int = DEFAULT_WIDTH) -> Path:
    """Run the ``part`` of the study (``images``, ``dynamics`` or ``all``) for each seed; write
    ``depth_refinement.md``/``.json``, the figures and the report into the experiment folder (returned).

    ``blocks`` is the images' training depth ``N``, ``steps`` their training steps per run,
    ``overrides`` (``key=value``) apply to every image run, ``dynamics_overrides`` to every dynamics
    run, ``systems`` are the embedded dynamical systems of the dynamics half.
    """
    if not seeds:
        raise UserError("--seeds is empty; give at least one seed, e.g. 0,1,2")
    if part not in PARTS:
        raise UserError(f"--part {part} is not valid; choose one of {', '.join(PARTS)}")
    if part in ("images", "all"):
        check_images(blocks, steps, width)  # a bad setting fails before anything is written
    dynamics = None
    if part in ("dynamics", "all"):
        from tasks import depth_refinement_dynamics as dynamics

        dynamics.check(systems)
    root = out or Path("runs") / "experiments" / f"depth-refinement-{time.strftime('%Y%m%d-%H%M%S')}"
    root.mkdir(parents=True, exist_ok=True)
    started, machine = time.perf_counter(), _machine()  # before a recipe sets its own thread count
    result: dict[str, Any] = {}
    tables, figures = [], []
    if part in ("images", "all"):
        result["images"] = run_images(seeds, root, blocks, steps, width, overrides)
        tables.append("## Images: Fashion-MNIST top-1 at k evaluation steps\n\n" + images_table(result["images"]))
        figures.append(plot_images(result["images"], root / "images.png"))
    if dynamics is not None:
        result["dynamics"] = dynamics.run(seeds, root, systems, dynamics_overrides)
        tables.append("## Dynamics: rollout RMSE at Δt and Δt/2\n\n" + dynamics.table(result["dynamics"]))
        figures.append(dynamics.plot(result["dynamics"], root / "dynamics.png"))
    wall = round(time.perf_counter() - started, 1)
    meta = {"seeds": seeds, "part": part, "machine": machine, "wall_seconds": wall}
    text = (f"Seeds {', '.join(map(str, seeds))}; machine: {meta['machine']}; wall {meta['wall_seconds']:.0f} s.\n\n"
            + "\n".join(tables))
    (root / "depth_refinement.md").write_text(text)
    (root / "depth_refinement.json").write_text(json.dumps({"meta": meta, **result}, indent=2))
    print(text, file=sys.stderr)
    write_report(root, extra_figures=figures)
    return root
