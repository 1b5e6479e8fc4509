"""The DQN training loop: act in vector envs, store n-step transitions, learn, evaluate, save.

Checkpoints (``checkpoints/last.pt``) hold the online and target networks, the optimizer, the
step and the RNG states; ``best.pt`` holds the network with the best greedy return. The replay
buffer is saved only when ``data.root`` names a folder; otherwise a resumed run refills it for
``agent.learning_starts`` steps before learning again. Episodes in progress at the kill restart.

One iteration steps all sub-envs once: epsilon-greedy actions (the network runs only if some env
acts greedily), the gradient steps due (before the env step, so a GPU learner computes while the
CPU steps the envs), the env step, then the n-step transitions of every env in one batch.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from tasks.core.checkpoint import atomic_save
from tasks.core.device import resolve_device, set_threads
from tasks.core.errors import UserError
from tasks.core.lifecycle import Progress, RunFolder, StopRequest, best_view, checkpoint, restore
from tasks.core.weights import load_pretrained

from .agent import Learner, epsilon_at
from .config import DQNConfig
from .data import env_info, final_observations, finished_episodes, make_vector_env
from .evaluate import EVAL_SEED_OFFSET, eval_envs, evaluate_policy, plot_rl_curves
from .model import build_model
from .replay import NStepAccumulator, ReplayBuffer


def check_config(cfg: DQNConfig) -> None:
    """Reject settings that cannot work, each with a one-line fix."""
    a, t = cfg.agent, cfg.trainer
    checks = [
        (t.max_steps > 0, f"trainer.max_steps={t.max_steps} must be > 0 (environment steps)"),
        (a.n_step >= 1, f"agent.n_step={a.n_step} must be >= 1"),
        (0 < a.gamma <= 1, f"agent.gamma={a.gamma} must be in (0, 1]"),
        (0 < a.tau <= 1, f"agent.tau={a.tau} must be in (0, 1]; 1 = hard target copies"),
        (a.train_freq >= 1 and a.gradient_steps >= 1 and a.target_update >= 1,
         "agent.train_freq, agent.gradient_steps and agent.target_update must be >= 1"),
        (a.buffer_size >= cfg.data.batch_size >= 1,
         f"agent.buffer_size={a.buffer_size} must hold at least one batch (data.batch_size={cfg.data.batch_size})"),
        (cfg.eval.episodes >= 1 and cfg.eval.final_episodes >= 1, "eval.episodes and eval.final_episodes must be >= 1"),
        # the Q-networks are small and launch-bound: they train in fp32 (TF32 on CUDA), uncompiled
        (t.precision in ("auto", "fp32"), f"trainer.precision={t.precision} is not supported by DQN (its small "
                                          "networks train in fp32, TF32 on CUDA); use trainer.precision=auto"),
        (not t.compile, "trainer.compile=true is not supported by DQN (its networks are launch-bound, not "
                        "compute-bound); drop it"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


def crossed(before: int, after: int, every: int) -> int:
    """How many multiples of ``every`` lie in ``(before, after]``."""
    return after // every - before // every if every > 0 else 0


class DQNTrainer:
    """Fits a DQN agent with config ``cfg`` into the claimed run folder ``run``."""

    def __init__(self, cfg: DQNConfig, run: RunFolder) -> None:
        check_config(cfg)
        self.cfg, self.run, self.run_dir = cfg, run, run.path
        self.device = resolve_device(cfg.trainer.device)
        set_threads(cfg.trainer.threads)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        torch.manual_seed(cfg.seed)
        self.info = env_info(cfg.env)
        model = build_model(cfg, self.info)
        self.pretrained = load_pretrained(model, cfg.backbone)  # before the target network copies it
        self.learner = Learner(model, cfg, self.device)
        a = cfg.agent
        self.buffer = make_replay(cfg, self.info, self.device)
        self.nstep = NStepAccumulator(cfg.env.num_envs, a.n_step, a.gamma, tuple(self.info["obs_shape"]),
                                      self.info["obs_dtype"])
        self.params = sum(p.numel() for p in self.learner.online.parameters())
        self.progress = Progress("return_mean", higher_is_better=True)
        self.episodes = 0
        self.interrupted = False
        self.learn_from = a.learning_starts
        self.rng = np.random.default_rng(cfg.seed)
        self.logger = run.open_logger()

    @property
    def step(self) -> int:
        return self.progress.step

    @step.setter
    def step(self, value: int) -> None:
        self.progress.step = value

    # ------------------------------------------------------------ checkpoint
    def replay_path(self) -> Path | None:
        return Path(self.cfg.data.root) / self.run_dir.name / "replay.pt" if self.cfg.data.root else None

    def save(self, is_best: bool) -> None:
        state = checkpoint("dqn", self.cfg, self.info, self.progress, **self.learner.state_dict(),
                           episodes=self.episodes)
        self.run.save(state, best_view(state, ("target", "optimizer", "scheduler")) if is_best else None)
        if self.replay_path() is not None:
            atomic_save(self.buffer.state_dict(), self.replay_path())

    def resume(self) -> bool:
        """Continue from ``last.pt``; returns False when the run has no checkpoint yet."""
        ckpt = self.run.load_last()
        if ckpt is None:
            return False
        self.learner.load_state_dict(ckpt)
        restore(ckpt, self.progress)
        self.episodes = int(ckpt.get("episodes", 0))
        self.rng = np.random.default_rng([self.cfg.seed, self.step])
        self.buffer.seed(int(self.rng.integers(2 ** 62)))
        replay = self.replay_path()
        if replay is not None and replay.is_file():
            self.buffer.load_state_dict(load_checkpoint_tensors(replay))
        else:  # refill before learning again, so early batches are not a handful of transitions
            self.learn_from = self.step + self.cfg.agent.learning_starts
        return True

    # ------------------------------------------------------------------ loop
    def _act(self, obs: np.ndarray, epsilon: float) -> tuple[np.ndarray, float | None]:
        """Epsilon-greedy actions for every sub-env (and the mean greedy Q, when the net was asked).

        The coin flips come first, so a step where every env explores (all of them, early on)
        never runs the network.
        """
        n = len(obs)
        explore = self.rng.random(n) < epsilon
        actions = self.rng.integers(0, self.info["num_actions"], n)
        if explore.all():
            return actions, None
        greedy, q = self.learner.act(obs)
        return np.where(explore, actions, greedy), float(q.mean())

    def _store(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
               terminated: np.ndarray, truncated: np.ndarray) -> None:
        done = self.nstep.add(obs, actions, rewards, next_obs, terminated, truncated)
        if done is not None:
            self.buffer.add(*done)

    def _learn(self, rounds: int, window: dict[str, Any]) -> None:
        a, total = self.cfg.agent, self.cfg.trainer.max_steps
        beta = a.priority_beta + (1.0 - a.priority_beta) * min(1.0, self.step / total)
        for _ in range(rounds * a.gradient_steps):
            batch = self.buffer.sample(self.cfg.data.batch_size, beta)
            if self.buffer.device != self.device:  # replay kept on the host (data.replay_device=cpu)
                batch = {k: v.pin_memory().to(self.device, non_blocking=True) if self.device.type == "cuda"
                         else v.to(self.device) for k, v in batch.items()}
            out = self.learner.update(batch)
            if out["td_errors"] is not None:
                self.buffer.update_priorities(batch["indices"], out["td_errors"])
            window["loss"].append(out["loss"])
            window["q"].append(out["q"])

    def fit(self, stop_at: int | None = None) -> dict[str, float]:
        """Run to ``trainer.max_steps`` env steps (or stop at ``stop_at``, as a kill would)."""
        cfg, a, t = self.cfg, self.cfg.agent, self.cfg.trainer
        envs = make_vector_env(cfg.env)
        evaluators = eval_envs(cfg, cfg.eval.episodes)
        bar = tqdm(total=t.max_steps, initial=self.step, file=sys.stderr, dynamic_ncols=True,
                   disable=not t.progress, desc="dqn")
        metrics: dict[str, float] = {}
        window: dict[str, Any] = {"loss": [], "q": [], "returns": [], "act_q": []}
        stop = StopRequest().__enter__()  # Ctrl-C: checkpoint after this step, then stop
        try:
            obs, infos = envs.reset(seed=cfg.seed + self.step)
            lives = infos.get("lives")
            clock, last_log = time.perf_counter(), self.step
            while self.step < t.max_steps:
                epsilon = epsilon_at(self.step, t.max_steps, a.eps_start, a.eps_end, a.exploration_fraction)
                actions, act_q = self._act(obs, epsilon)
                before, after = self.step, self.step + cfg.env.num_envs
                if after >= self.learn_from and len(self.buffer) >= cfg.data.batch_size:
                    # Before the env step: a GPU learner's kernels then run while the CPU steps the envs.
                    self._learn(crossed(before, after, a.train_freq), window)
                next_obs, rewards, terminated, truncated, infos = envs.step(actions)
                done = terminated | truncated
                ends = terminated.copy()
                if cfg.env.episodic_life and lives is not None and "lives" in infos:
                    # A lost life ends the learner's return without resetting the game (DeepMind's
                    # "episodic life"); the vector env already reset any game that ended.
                    ends |= (infos["lives"] < lives) & ~done
                    lives = infos["lives"]
                self._store(obs, actions, rewards, final_observations(next_obs, infos, done), ends, truncated)
                obs, self.step = next_obs, after
                for ret, _ in finished_episodes(infos):
                    window["returns"].append(ret)
                    self.episodes += 1
                if act_q is not None:
                    window["act_q"].append(act_q)
                if a.tau >= 1.0 and crossed(before, self.step, a.target_update):
                    self.learner.hard_update()
                if crossed(before, self.step, t.log_every) or self.step >= t.max_steps:
                    self._log(window, epsilon, (self.step - last_log) / max(1e-9, time.perf_counter() - clock))
                    bar.update(self.step - bar.n)
                if crossed(before, self.step, t.eval_every) or self.step >= t.max_steps:
                    self.progress.elapsed += time.perf_counter() - clock
                    metrics = self._evaluate_and_save(evaluators)
                    clock, last_log = time.perf_counter(), self.step
                elif stop:
                    self.progress.elapsed += time.perf_counter() - clock
                    self.save(is_best=False)
                if stop:
                    self.interrupted = True
                    break
                if stop_at is not None and self.step >= stop_at:
                    break
        finally:
            stop.__exit__()
            bar.close()
            envs.close()
            for env in evaluators:
                env.close()
            plot_rl_curves(self.run_dir, f"dqn: {cfg.env.id}, {cfg.backbone.name} "
                                         f"(shortcut={cfg.backbone.shortcut or 'identity'})")
        return metrics

    def _log(self, window: dict[str, Any], epsilon: float, rate: float) -> None:
        def mean(values: list) -> float:
            return float(torch.stack(values).mean()) if values and isinstance(values[0], torch.Tensor) \
                else (float(np.mean(values)) if values else float("nan"))

        record = {"step": self.step, "train/loss": mean(window["loss"]), "train/q": mean(window["q"]),
                  "train/act_q": mean(window["act_q"]), "train/return": mean(window["returns"]),
                  "epsilon": epsilon, "lr": self.learner.scheduler.get_last_lr()[0], "episodes": self.episodes,
                  "updates": self.learner.updates,
                  "steps_per_s": rate}
        self.logger.train(record)
        for values in window.values():
            values.clear()

    def _evaluate_and_save(self, envs: list[Any]) -> dict[str, float]:
        e = self.cfg.eval
        metrics = evaluate_policy(self.learner.online, envs, e.episodes, e.epsilon, self.cfg.seed + EVAL_SEED_OFFSET,
                                  self.device)
        is_best = self.progress.improved(metrics)
        self.logger.eval({"step": self.step, "train_seconds": round(self.progress.elapsed, 2), "params": self.params,
                          **{f"val/{k}": v for k, v in metrics.items()}})
        tqdm.write(f"step {self.step}: return {metrics['return_mean']:.1f} +- {metrics['return_std']:.1f} "
                   f"(best {self.progress.best:.1f})", file=sys.stderr)
        self.save(is_best)
        return metrics


def make_replay(cfg: DQNConfig, info: dict[str, Any], device: torch.device) -> ReplayBuffer:
    """The replay buffer on ``data.replay_device`` (``auto``: the learner's device)."""
    a = cfg.agent
    where = device if cfg.data.replay_device == "auto" else resolve_device(cfg.data.replay_device)
    try:
        return ReplayBuffer(a.buffer_size, tuple(info["obs_shape"]), info["obs_dtype"], a.prioritized,
                            a.priority_alpha, a.priority_eps, where, seed=cfg.seed)
    except torch.OutOfMemoryError:
        raise UserError(f"agent.buffer_size={a.buffer_size} does not fit in {where}'s memory; lower it or keep the "
                        "replay on the host with data.replay_device=cpu") from None


def load_checkpoint_tensors(path: Path) -> dict[str, Any]:
    """A saved replay buffer (weights-only load: tensors and numbers only)."""
    return torch.load(path, map_location="cpu", weights_only=True)
