"""The dynamics half of ``rsuite experiment depth-refinement``: a residual step refines, a plain one cannot.

For each embedded system (``tasks/dynamics``' generated trajectories: the damped pendulum and
Lorenz-63 by default) and each seed, two one-step models are trained on the same trajectories
sampled every ``Δt``, with the task's own recipes:

- ``residual`` (``pendulum_resmlp`` with ``data.system=<system>``): one interval is
  ``x + Δt f(x)``, an explicit Euler step of the learned field ``f``;
- ``plain`` (``pendulum_plain``, its twin without shortcuts): the next state is ``g(x)``.

Both are scored by the task's evaluation (50-step validation rollouts, normalised units) with
``eval.substeps=k``: the residual model at ``Δt`` (``k = 1``, as trained), ``Δt/2`` (two half
steps ``x + (Δt/2) f(x)`` per interval) and ``Δt/4``; the plain model only at ``Δt``: asked for
``k = 2`` it refuses (its message is recorded once). The persistence forecast ("no change") is
the floor every model must beat.
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

from tasks import api
from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.core.runlog import save_figure
from tasks.registry import load_task

DEFAULT_SYSTEMS = ("pendulum", "lorenz")
#: residual model's evaluation sub-steps per observation interval: Δt, Δt/2, Δt/4
SUBSTEPS = (1, 2, 4)
#: training steps per dynamics run (the task's default recipe trains 2000)
DEFAULT_STEPS = 1000
MODELS = {"residual": ("pendulum_resmlp", ["model.kind=residual"]), "plain": ("pendulum_plain", ["model.kind=plain"])}
#: the task's metrics that are not a model's score
NOT_SCORES = ("eval_seconds", "windows", "rollout_rmse_persistence")


def check(systems: tuple[str, ...] | None) -> tuple[str, ...]:
    """The systems to study (default pendulum, lorenz); a one-line error for an unknown one, before training."""
    systems = tuple(systems or DEFAULT_SYSTEMS)
    if not systems:
        raise UserError("--systems is empty; give embedded systems, e.g. pendulum,lorenz")
    from tasks.dynamics.systems import get_system

    task = load_task("dynamics")
    for system in systems:
        get_system(system)  # names the valid systems when this one is not
        for recipe, extra in MODELS.values():
            task.check(load_config(task.config_class, task.recipe_path(recipe), [f"data.system={system}", *extra]))
    return systems


def _score(run_dir: Path, substeps: int) -> dict[str, float]:
    """The task's validation metrics of the run's best checkpoint with ``eval.substeps=substeps``."""
    loaded = api.load_run(run_dir)
    cfg = dataclasses.replace(loaded.cfg, eval=dataclasses.replace(loaded.cfg.eval, substeps=substeps))
    return loaded.task.final_metrics(cfg, loaded.model, loaded.info, None, loaded.device)


def plain_refusal(run_dir: Path) -> str:
    """What a trained plain model says when asked to take two half steps (``rollout(..., substeps=2)``)."""
    from tasks.dynamics.model import rollout

    loaded = api.load_run(run_dir)
    dim = int(loaded.info["dim"])
    try:
        rollout(loaded.model, torch.zeros(1, dim), torch.tensor([0.0, float(loaded.info["time_scale"])]), 2)
    except ValueError as err:
        return str(err)
    raise AssertionError(f"the plain model of {run_dir} refined its step; it should have refused")


def run(seeds: list[int], root: Path, systems: tuple[str, ...] | None = None,
        overrides: list[str] | None = None, steps: int = DEFAULT_STEPS) -> dict[str, Any]:
    """Train residual and plain models per system and seed; score them at every sub-step count. The result dict."""
    systems = check(systems)
    task = load_task("dynamics")
    overrides = list(overrides or [])
    has_steps = any(o.startswith("trainer.max_steps=") for o in overrides)
    budget = [] if has_steps else [f"trainer.max_steps={steps}", f"trainer.eval_every={steps}"]
    result: dict[str, Any] = {"systems": {}, "substeps": list(SUBSTEPS), "overrides": [*budget, *overrides]}
    total, done = len(systems) * len(seeds) * len(MODELS), 0
    for system in systems:
        runs: dict[str, list[Path]] = {kind: [] for kind in MODELS}
        for seed in seeds:
            for kind, (recipe, extra) in MODELS.items():
                done += 1
                print(f"[depth-refinement] dynamics {done}/{total}: {system} {kind} seed {seed}", file=sys.stderr)
                settings = [f"data.system={system}", *extra, f"seed={seed}", *budget,
                            f"trainer.runs_dir={root / 'dynamics'}", f"trainer.run_name={system}-{kind}-seed{seed}",
                            *overrides]
                runs[kind].append(api.train(task, settings, recipe=recipe).dir)
        rows: dict[str, Any] = {}
        for kind in MODELS:
            counts = SUBSTEPS if kind == "residual" else (1,)
            scores = {k: [_score(run, k) for run in runs[kind]] for k in counts}
            metrics = {str(k): {m: [s[m] for s in scores[k]] for m in scores[k][0] if m not in NOT_SCORES}
                       for k in counts}
            rows[kind] = {"runs": [str(p) for p in runs[kind]], "metrics": metrics,
                          "persistence": [s["rollout_rmse_persistence"] for s in scores[1]]}
        rows["plain"]["refusal"] = plain_refusal(runs["plain"][0])
        loaded = api.load_run(runs["residual"][0])
        result["systems"][system] = {"dt": float(loaded.info["time_scale"]), "horizon": loaded.cfg.eval.horizon,
                                     "rows": rows}
    return result


def _stat(values: list[float], fmt: str) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{format(statistics.fmean(values), fmt)} ± {format(spread, fmt)}"


def _step_label(k: int, dt: float) -> str:
    return f"Δt = {dt:g}" if k == 1 else f"Δt/{k} = {dt / k:g}"


def table(result: dict[str, Any]) -> str:
    """Markdown: per system and model, rollout RMSEs and valid time at each step; mean ± std over seeds."""
    lines = []
    for system, entry in result["systems"].items():
        first = next(iter(entry["rows"]["residual"]["metrics"].values()))
        shorter = sorted((m for m in first if m.startswith("rollout_rmse_")), key=lambda m: int(m.rsplit("_", 1)[1]))
        heads = [f"rollout RMSE ({entry['horizon']} steps)", *(f"RMSE {m.rsplit('_', 1)[1]} steps" for m in shorter),
                 "valid time (steps)", "persistence RMSE"]
        lines += [f"| system | model | step | {' | '.join(heads)} |", "|---|---|---|" + "---|" * len(heads)]
        for kind, row in entry["rows"].items():
            for k, m in row["metrics"].items():
                cells = [_stat(m["rollout_rmse"], ".4f"), *(_stat(m[s], ".4f") for s in shorter),
                         _stat(m["valid_time"], ".1f"), _stat(row["persistence"], ".3f")]
                lines.append(f"| {system} | {kind} | {_step_label(int(k), entry['dt'])} | {' | '.join(cells)} |")
            if "refusal" in row:
                lines.append(f"| {system} | {kind} | {_step_label(2, entry['dt'])} | refused: \"{row['refusal']}\" |"
                             + " |" * (len(heads) - 1))
        lines.append("")
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> Path:
    """Rollout RMSE against the integration step, one panel per system: residual refined, plain at Δt only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = result["systems"]
    fig, axes = plt.subplots(1, len(systems), figsize=(5.5 * len(systems), 4.2), squeeze=False)
    for ax, (system, entry) in zip(axes[0], systems.items()):
        for kind, row in entry["rows"].items():
            ks = [int(k) for k in row["metrics"]]
            values = [row["metrics"][str(k)]["rollout_rmse"] for k in ks]
            means = [statistics.fmean(v) for v in values]
            spread = [statistics.stdev(v) if len(v) > 1 else 0.0 for v in values]
            ax.errorbar([entry["dt"] / k for k in ks], means, yerr=spread, marker="o" if kind == "residual" else "s",
                        capsize=3, linestyle="-" if len(ks) > 1 else "none",
                        color="tab:blue" if kind == "residual" else "tab:gray", label=kind)
        ax.axhline(statistics.fmean(entry["rows"]["residual"]["persistence"]), color="k", linestyle=":", alpha=0.4,
                   label="persistence (no change)")
        ax.set_xscale("log", base=2)
        ax.set_xticks([entry["dt"] / k for k in result["substeps"]],
                      [_step_label(k, entry["dt"]) for k in result["substeps"]])
        ax.minorticks_off()
        ax.invert_xaxis()
        ax.set(xlabel=f"integration step (trained at Δt = {entry['dt']:g})",
               ylabel=f"{entry['horizon']}-step rollout RMSE (normalised)",
               title=f"{system}: mean ± std over seeds")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return save_figure(fig, path, dpi=120)
