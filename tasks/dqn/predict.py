"""Greedy actions and played episodes of a trained agent (``tasks.Predictor``, ``rsuite predict``), and its export.

``rsuite predict RUN_DIR INPUT ... [--out FILE]``: each input is an integer episode seed for
the run's environment, or another gymnasium id with the same observation and action spaces.
``--out x.gif`` renders the first episode (``render_mode="rgb_array"``); any other ``--out``
receives the results as JSON. From Python, ``Predictor.from_run(run)(observation)`` gives the
greedy action and the Q-values, and ``.play(inputs)`` the episodes. The export is the
Q-network (``obs`` -> ``q_values``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from tasks.core.errors import UserError
from tasks.core.export import ExportSpec
from tasks.core.predict import TaskPredictor, chunks

from .config import DQNConfig
from .evaluate import EVAL_SEED_OFFSET, eval_env, run_episode

GIF_MAX_FRAMES = 600  # a few seconds at 30 fps: a short clip, not a film
TOLERANCE = 1e-3  # on Q-values


def _save_gif(frames: list[np.ndarray], path: Path, fps: int = 30) -> None:
    from PIL import Image

    images = [Image.fromarray(np.asarray(f)) for f in frames[:GIF_MAX_FRAMES] if f is not None]
    if not images:
        raise UserError("the environment rendered no frames; it has no rgb_array renderer, so use a .json --out")
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)


class DQNPredictor(TaskPredictor):
    """Observation -> ``{"action": greedy action, "q_values": [...]}``; :meth:`play` runs whole episodes."""

    def __init__(self, cfg: DQNConfig, info: dict[str, Any], device: torch.device, model: nn.Module | None = None,
                 session: Any = None) -> None:
        super().__init__(cfg, info, device, model, session)
        self.single_rank = len(info["obs_shape"])
        self.dtype = np.dtype(info["obs_dtype"])

    def prepare(self, item: Any) -> torch.Tensor:
        obs = np.asarray(item.cpu() if isinstance(item, torch.Tensor) else item, dtype=self.dtype)
        if list(obs.shape) != list(self.info["obs_shape"]):
            raise UserError(f"an observation of {self.info['env_id']} has shape {tuple(self.info['obs_shape'])}, "
                            f"not {obs.shape}")
        return torch.from_numpy(np.array(obs))

    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values of a batch of observations (the policy :func:`run_episode` plays)."""
        return self.call(obs)[0]

    def infer(self, prepared: list[torch.Tensor]) -> list[torch.Tensor]:
        q = [self.q_values(torch.stack(list(part))) for part in chunks(prepared, self.max_batch)]
        return list(torch.cat(q)) if q else []

    def finish(self, q: torch.Tensor, item: Any) -> dict[str, Any]:
        return {"action": int(q.argmax()), "q_values": [round(float(v), 4) for v in q]}

    def play(self, inputs: list[Any], gif: Path | None = None) -> list[dict[str, Any]]:
        """One greedy episode per input: an integer seed for the run's environment, or another gymnasium id
        with the same spaces. ``gif`` renders the first episode there."""
        cfg, info = self.cfg, self.info
        results, frames = [], None
        for n, item in enumerate(map(str, inputs)):
            seed, env_id = (int(item), cfg.env.id) if item.lstrip("-").isdigit() else (cfg.seed, item)
            render = "rgb_array" if gif is not None and n == 0 else None
            env = eval_env(cfg, render_mode=render, env_id=env_id)
            try:
                space = (tuple(env.observation_space.shape), getattr(env.action_space, "n", None))
                if space != (tuple(info["obs_shape"]), info["num_actions"]):
                    raise UserError(f"{env_id} has observations/actions {space}, but the agent was "
                                    f"trained on {cfg.env.id}; give seeds or an id with the same spaces")
                frames = [] if render else frames
                try:
                    ret, length = run_episode(self.q_values, env, seed, cfg.eval.epsilon, torch.device("cpu"),
                                              np.random.default_rng(seed), frames if render else None)
                except gym.error.DependencyNotInstalled as err:
                    raise UserError(f"{env_id} cannot render here ({str(err).splitlines()[0]}); "
                                    "or write --out results.json instead of a GIF") from None
            finally:
                env.close()
            results.append({"input": item, "env": env_id, "seed": seed, "return": ret, "length": length})
        if gif is not None:
            _save_gif(frames or [], Path(gif))
            results[0]["gif"] = str(gif)
        return results


def make_predictor(cfg: DQNConfig, info: dict[str, Any], device: torch.device, model: nn.Module | None = None,
                   session: Any = None) -> DQNPredictor:
    return DQNPredictor(cfg, info, device, model, session)


def example_inputs(cfg: DQNConfig, info: dict[str, Any], batch: int = 1) -> list[tuple[torch.Tensor, ...]]:
    """Observations the environment really produces (evaluation seeds, a few random steps apart)."""
    env = eval_env(cfg)
    env.action_space.seed(cfg.seed)
    observations = []
    try:
        obs, _ = env.reset(seed=cfg.seed + EVAL_SEED_OFFSET)
        while len(observations) < 2 * batch:
            observations.append(np.asarray(obs))
            for _ in range(3):
                obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
                if terminated or truncated:
                    obs, _ = env.reset()
    finally:
        env.close()
    stacked = torch.from_numpy(np.stack(observations))
    return [(stacked[:batch],), (stacked[batch:],)]


def export_spec(cfg: DQNConfig, model: nn.Module, info: dict[str, Any]) -> ExportSpec:
    return ExportSpec(model, ["obs"], ["q_values"], TOLERANCE)


def predict(run_dir: Path, inputs: list[Path], out: Path | None = None) -> list[dict[str, Any]]:
    """One greedy episode per input (seed or env id); returns their return and length."""
    from tasks.deploy import Predictor

    want_gif = out is not None and str(out).lower().endswith(".gif")
    results = Predictor.from_run(run_dir).play([str(x) for x in inputs], Path(out) if want_gif else None)
    if out is not None and not want_gif:
        Path(out).write_text(json.dumps(results, indent=2))
    return results
