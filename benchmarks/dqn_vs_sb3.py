"""Our residual DQN against Stable-Baselines3's ``DQN`` on CartPole-v1, side by side in one run.

What: for each seed, both agents train for ``--steps`` environment steps. Every ``--eval-every``
steps the greedy policy plays ``--eval-episodes`` episodes (the same episode seeds for both);
we report the environment steps until that mean first reaches ``--solved`` (475), the training
wall time to that point (evaluation time excluded for both), the training speed in environment
steps per second over the whole run (``--steps`` / training wall seconds, evaluation excluded;
acting, replay and learning included), and the mean return of the final network over
``--final-episodes`` (100) greedy episodes. The last line gives ours/SB3 of the median speeds.

Both do the same learning work per environment step: one gradient step on a batch of 64 per
two environment steps (ours: ``train_freq=2``; SB3: 128 gradient steps every 256 env steps).

SB3 runs with the rl-zoo3 CartPole-v1 hyperparameters (lr 2.3e-3, batch 64, buffer 100k,
learning_starts 1000, target update 10, train_freq 256, gradient_steps 128, exploration
fraction 0.16, final eps 0.04, net [256, 256]). Ours runs the ``cartpole_resmlp`` recipe
(plus ``--ours KEY=VALUE`` overrides). Both run in this process, one after the other per seed,
with the same torch thread count. Stable-Baselines3 is a benchmark-only dependency:

    .venv/bin/pip install stable-baselines3
    OMP_WAIT_POLICY=PASSIVE python benchmarks/dqn_vs_sb3.py --seeds 0 1 2 --out benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import tasks
from tasks.core.runlog import read_jsonl
from tasks.dqn.evaluate import EVAL_SEED_OFFSET
from tasks.dqn.task import TASK

ENV_ID = "CartPole-v1"
SECTION = "## DQN vs Stable-Baselines3 on CartPole-v1"


def greedy_returns(act: Callable[[np.ndarray], int], episodes: int, seed: int) -> list[float]:
    """Returns of ``episodes`` greedy episodes seeded ``seed, seed + 1, ...`` (the same for both agents)."""
    env = gym.make(ENV_ID)
    out = []
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total, done = total + float(reward), terminated or truncated
        out.append(total)
    env.close()
    return out


def first_solved(curve: list[tuple[int, float, float]], solved: float) -> tuple[int | None, float | None]:
    """(env steps, train seconds) of the first evaluation whose mean reaches ``solved``."""
    for step, mean, seconds in curve:
        if mean >= solved:
            return step, seconds
    return None, None


def run_ours(seed: int, args: argparse.Namespace, runs_dir: Path) -> dict:
    overrides = [f"seed={seed}", f"trainer.max_steps={args.steps}", f"trainer.eval_every={args.eval_every}",
                 f"eval.episodes={args.eval_episodes}", f"trainer.threads={args.threads}", "trainer.progress=false",
                 "trainer.device=cpu", f"trainer.runs_dir={runs_dir}", f"trainer.run_name=ours-seed{seed}",
                 *args.ours]
    run = tasks.train(TASK, overrides).dir
    curve = [(r["step"], r["val/return_mean"], r["train_seconds"]) for r in read_jsonl(run / "metrics.jsonl")]
    model = tasks.load_run(run, "last").model

    @torch.no_grad()
    def act(obs: np.ndarray) -> int:
        return int(model(torch.as_tensor(obs).unsqueeze(0)).argmax(1).item())

    final = greedy_returns(act, args.final_episodes, seed + 2 * EVAL_SEED_OFFSET)
    return {"curve": curve, "final": float(np.mean(final)), "total_seconds": curve[-1][2]}


def run_sb3(seed: int, args: argparse.Namespace) -> dict:
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback

    curve: list[tuple[int, float, float]] = []

    class Evaluate(BaseCallback):
        """Greedy evaluation every ``eval_every`` steps; its time is kept out of the training clock."""

        def _on_training_start(self) -> None:
            self.started, self.paused = time.perf_counter(), 0.0

        def _on_step(self) -> bool:
            if self.num_timesteps % args.eval_every == 0:
                t0 = time.perf_counter()
                trained = t0 - self.started - self.paused
                returns = greedy_returns(act, args.eval_episodes, seed + EVAL_SEED_OFFSET)
                self.paused += time.perf_counter() - t0
                curve.append((self.num_timesteps, float(np.mean(returns)), trained))
            return True

    model = DQN("MlpPolicy", gym.make(ENV_ID), learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
                learning_starts=1000, gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
                exploration_fraction=0.16, exploration_final_eps=0.04, policy_kwargs={"net_arch": [256, 256]},
                seed=seed, device="cpu", verbose=0)

    def act(obs: np.ndarray) -> int:
        return int(model.predict(obs, deterministic=True)[0])

    model.learn(total_timesteps=args.steps, callback=Evaluate())
    final = greedy_returns(act, args.final_episodes, seed + 2 * EVAL_SEED_OFFSET)
    return {"curve": curve, "final": float(np.mean(final)), "total_seconds": curve[-1][2] if curve else None}


def fmt(value: float | None, spec: str) -> str:
    return "not reached" if value is None else format(value, spec)


def table(results: dict[str, dict[int, dict]], args: argparse.Namespace) -> list[str]:
    lines = [f"| agent | seed | steps to {args.solved:g} | train s to {args.solved:g} | total train s "
             f"| env steps/s | final {args.final_episodes}-ep mean |", "|---|---|---|---|---|---|---|"]
    speeds: dict[str, float] = {}
    for agent, by_seed in results.items():
        for seed, r in by_seed.items():
            steps, secs = first_solved(r["curve"], args.solved)
            lines.append(f"| {agent} | {seed} | {fmt(steps, 'd')} | {fmt(secs, '.1f')} | "
                         f"{fmt(r['total_seconds'], '.1f')} | {fmt(steps_per_s(r, args), '.0f')} | {r['final']:.1f} |")
        solved = [first_solved(r["curve"], args.solved) for r in by_seed.values()]
        reached = [s for s in solved if s[0] is not None]
        med_steps = statistics.median(s[0] for s in reached) if reached else None
        med_secs = statistics.median(s[1] for s in reached) if reached else None
        rates = [v for v in (steps_per_s(r, args) for r in by_seed.values()) if v is not None]
        speeds[agent] = statistics.median(rates) if rates else float("nan")
        lines.append(f"| **{agent}** | solved {len(reached)}/{len(solved)} | median {fmt(med_steps, '.0f')} | "
                     f"median {fmt(med_secs, '.1f')} | | median {speeds[agent]:.0f} | "
                     f"mean {np.mean([r['final'] for r in by_seed.values()]):.1f} |")
    if {"ours", "sb3"} <= set(speeds):
        lines += ["", f"Training speed, ours / SB3 (median env steps/s): **{speeds['ours'] / speeds['sb3']:.2f}x**"]
    return lines


def steps_per_s(r: dict, args: argparse.Namespace) -> float | None:
    """Environment steps per second of training over the whole run (evaluation excluded)."""
    return args.steps / r["total_seconds"] if r.get("total_seconds") else None


def write_section(path: Path, body: list[str]) -> None:
    """Replace (or append) this benchmark's section of ``path``, keeping other benchmarks' sections."""
    text = path.read_text() if path.is_file() else "# Benchmark results\n"
    start = text.find(SECTION)
    if start >= 0:
        end = text.find("\n## ", start + len(SECTION))
        text = text[:start] + text[end + 1:] if end >= 0 else text[:start]
    path.write_text(text.rstrip("\n") + "\n\n" + "\n".join(body) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=50_000)
    p.add_argument("--eval-every", type=int, default=1_000)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--final-episodes", type=int, default=100)
    p.add_argument("--solved", type=float, default=475.0)
    p.add_argument("--threads", type=int, default=1, help="torch threads for both agents")
    p.add_argument("--agents", nargs="+", default=["ours", "sb3"], choices=["ours", "sb3"])
    p.add_argument("--ours", nargs="*", default=[], metavar="KEY=VALUE", help="overrides for our recipe")
    p.add_argument("--out", type=Path, help="Markdown file whose DQN section is (re)written (benchmarks/RESULTS.md)")
    p.add_argument("--plot", type=Path, help="PNG of the greedy-return curves and the training speeds")
    args = p.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    torch.set_num_threads(args.threads)
    results: dict[str, dict[int, dict]] = {a: {} for a in args.agents}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:  # interleaved per seed, so load drift hits both agents alike
            if "ours" in results:
                results["ours"][seed] = run_ours(seed, args, Path(tmp))
            if "sb3" in results:
                results["sb3"][seed] = run_sb3(seed, args)
            print(f"seed {seed} done", file=sys.stderr)
    import importlib.metadata

    sb3 = importlib.metadata.version("stable-baselines3") if "sb3" in results else "not run"
    body = [SECTION, "",
            f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__}, stable-baselines3 {sb3}, {args.threads} thread(s); "
            f"{args.steps} env steps, greedy evaluation of {args.eval_episodes} episodes every {args.eval_every} "
            f"steps; ours: recipe `cartpole_resmlp` {' '.join(args.ours)}".rstrip(), "",
            *table(results, args)]
    print("\n".join(body))
    if args.out:
        write_section(args.out, body)
    if args.plot:
        plot(results, args)


def plot(results: dict[str, dict[int, dict]], args: argparse.Namespace) -> None:
    """Left: greedy return against environment steps, one line per agent and seed. Right: training
    environment steps per second per seed (evaluation excluded)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [2, 1]})
    colors = {"ours": "tab:blue", "sb3": "tab:orange"}
    for agent, by_seed in results.items():
        for i, r in enumerate(by_seed.values()):
            steps, means = [c[0] for c in r["curve"]], [c[1] for c in r["curve"]]
            left.plot(steps, means, color=colors[agent], alpha=0.8, lw=1.2, label=agent if i == 0 else None)
        rates = [steps_per_s(r, args) or 0.0 for r in by_seed.values()]
        offset = -0.2 if agent == "ours" else 0.2
        right.bar([k + offset for k in range(len(rates))], rates, width=0.4, color=colors[agent], label=agent)
    left.axhline(args.solved, color="gray", ls="--", lw=0.8)
    left.set(xlabel="environment steps", ylabel=f"greedy return ({args.eval_episodes} episodes)",
             title="CartPole-v1: greedy evaluation during training")
    left.legend()
    seeds = list(next(iter(results.values())))
    right.set_xticks(range(len(seeds)), [f"seed {s}" for s in seeds])
    right.set(ylabel="env steps / s of training", title=f"training speed, {args.threads} thread(s)")
    right.legend()
    fig.tight_layout()
    fig.savefig(args.plot, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
