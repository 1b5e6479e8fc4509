"""Play episodes with a trained agent; optionally save one episode as an animated GIF.

``rsuite predict RUN_DIR INPUT ... [--out FILE]``: each input is an integer episode seed for
the run's environment, or another gymnasium id with the same observation and action spaces.
``--out x.gif`` renders the first episode (``render_mode="rgb_array"``); any other ``--out``
receives the results as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from tasks.api import load_run
from tasks.core.errors import UserError

from .evaluate import eval_env, run_episode

GIF_MAX_FRAMES = 600  # a few seconds at 30 fps: a short clip, not a film


def _save_gif(frames: list[np.ndarray], path: Path, fps: int = 30) -> None:
    from PIL import Image

    images = [Image.fromarray(np.asarray(f)) for f in frames[:GIF_MAX_FRAMES] if f is not None]
    if not images:
        raise UserError("the environment rendered no frames; it has no rgb_array renderer, so use a .json --out")
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0)


def predict(run_dir: Path, inputs: list[Path], out: Path | None = None) -> list[dict[str, Any]]:
    """One greedy episode per input (seed or env id); returns their return and length."""
    run = load_run(run_dir)
    cfg, info, model = run.cfg, run.info, run.model
    want_gif = out is not None and str(out).lower().endswith(".gif")
    results, frames = [], None
    for n, item in enumerate(map(str, inputs)):
        seed, env_id = (int(item), cfg.env.id) if item.lstrip("-").isdigit() else (cfg.seed, item)
        render = "rgb_array" if want_gif and n == 0 else None
        env = eval_env(cfg, render_mode=render, env_id=env_id)
        try:
            space = (tuple(env.observation_space.shape), getattr(env.action_space, "n", None))
            if space != (tuple(info["obs_shape"]), info["num_actions"]):
                raise UserError(f"{env_id} has observations/actions {space}, but the agent was "
                                f"trained on {cfg.env.id}; give seeds or an id with the same spaces")
            frames = [] if render else frames
            try:
                ret, length = run_episode(model, env, seed, cfg.eval.epsilon, torch.device("cpu"),
                                          np.random.default_rng(seed), frames if render else None)
            except gym.error.DependencyNotInstalled as err:
                raise UserError(f"{env_id} cannot render here ({str(err).splitlines()[0]}); "
                                "or write --out results.json instead of a GIF") from None
        finally:
            env.close()
        results.append({"input": item, "env": env_id, "seed": seed, "return": ret, "length": length})
    if want_gif:
        _save_gif(frames or [], Path(out))
        results[0]["gif"] = str(out)
    elif out is not None:
        Path(out).write_text(json.dumps(results, indent=2))
    return results

