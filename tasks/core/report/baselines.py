"""Reference values beside each row, so a number can be read without knowing the task.

Each baseline is found from what the run folders hold, not from the task's name:

* **chance**: a ``topK`` headline and ``num_classes`` in ``data_info.json`` -> ``K / num_classes``;
* **bicubic**: the final metrics carry ``<headline>_bicubic`` (super-resolution scores bicubic
  upsampling of the same images with the same metric) -> its mean over seeds, and any other
  ``<metric>_bicubic`` (``ssim_y``) in the note;
* **random policy**: the config has an ``env.id`` and the headline is a return -> the mean return
  of uniformly random actions in that gymnasium environment, measured for each of the row's
  seeds on the episode seeds the in-run evaluation uses, once: results are kept in
  ``baselines.json`` in the report folder and reused by the next report.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from .groups import Baseline, Row
from .runs import canon

#: episode seeds of in-run greedy evaluations are ``seed + 10_000 + i`` (tasks.dqn.evaluate.EVAL_SEED_OFFSET);
#: the random policy plays the same starts
EVAL_SEED_OFFSET = 10_000
#: at most this many random episodes per env and seed (the in-run evaluation's count when smaller)
MAX_RANDOM_EPISODES = 10
CACHE_FILE = "baselines.json"


def chance(row: Row) -> Baseline | None:
    match = re.fullmatch(r"top(\d+)", row.metric)
    classes = row.runs[0].info.get("num_classes")
    if not match or not isinstance(classes, int) or classes < 1:
        return None
    k = int(match.group(1))
    return Baseline("chance", min(1.0, k / classes), f"{k}/{classes} classes")


def bicubic(row: Row) -> Baseline | None:
    value = row.metric_mean(f"{row.metric}_bicubic")
    if value is None:
        return None
    others = sorted({k.removesuffix("_bicubic") for r in row.runs for k in r.metrics
                     if k.endswith("_bicubic") and k != f"{row.metric}_bicubic"})
    notes = []
    for name in others:
        model, base = row.metric_mean(name), row.metric_mean(f"{name}_bicubic")
        if model is not None and base is not None:
            notes.append(f"{name} {model:.4f} vs bicubic {base:.4f}")
    return Baseline("bicubic", value, "; ".join(notes))


class RandomPolicy:
    """Random-policy returns per (environment settings, seed), cached in ``baselines.json``."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / CACHE_FILE
        try:
            self.cache: dict[str, Any] = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except (OSError, json.JSONDecodeError):
            self.cache = {}
        self.dirty = False

    def __call__(self, row: Row) -> Baseline | None:
        env = row.runs[0].config.get("env")
        if not isinstance(env, dict) or not env.get("id") or not row.metric.startswith("return"):
            return None
        evaluation = row.runs[0].config.get("eval") or {}
        episodes = max(1, min(MAX_RANDOM_EPISODES, int(evaluation.get("episodes") or MAX_RANDOM_EPISODES)))
        max_steps = int(evaluation.get("max_episode_steps") or env.get("max_episode_steps") or 0)
        values = []
        for seed in row.seeds:
            value = self.measure(env, seed, episodes, max_steps)
            if value is None:
                return None
            values.append(value)
        return Baseline("random policy", sum(values) / len(values),
                        f"{episodes} episodes x {len(values)} seed{'s' if len(values) > 1 else ''}")

    def measure(self, env: dict[str, Any], seed: int, episodes: int, max_steps: int) -> float | None:
        import gymnasium as gym

        atari = str(env["id"]).startswith("ALE/")
        settings = {"id": env["id"], "seed": seed, "episodes": episodes, "max_episode_steps": max_steps,
                    "gymnasium": gym.__version__}
        if atari:
            settings.update(frame_skip=env.get("frame_skip", 4), sticky_actions=env.get("sticky_actions", 0.25))
        key = canon(settings)
        if key in self.cache:
            return float(self.cache[key]["return_mean"])
        try:
            returns = _play_random(gym, settings, atari)
        except Exception as err:  # an env that is not installed here: the row simply has no baseline
            print(f"warning: no random-policy baseline for {env['id']}: {str(err).splitlines()[0]}", file=sys.stderr)
            return None
        self.cache[key] = {**settings, "return_mean": sum(returns) / len(returns), "returns": returns}
        self.dirty = True
        return float(self.cache[key]["return_mean"])

    def save(self) -> None:
        if self.dirty:
            self.path.write_text(json.dumps(self.cache, indent=1) + "\n")


def _play_random(gym: Any, settings: dict[str, Any], atari: bool) -> list[float]:
    """Returns (game score, unclipped) of uniformly random actions over ``episodes`` seeded episodes.

    Atari: the ALE itself skips ``frame_skip`` frames with sticky actions, which for a random
    policy scores the same game as the agent's ``AtariPreprocessing`` frame skipping.
    """
    kwargs: dict[str, Any] = {}
    if atari:
        import ale_py

        gym.register_envs(ale_py)
        kwargs.update(frameskip=settings["frame_skip"], repeat_action_probability=settings["sticky_actions"])
    if settings["max_episode_steps"] > 0:
        kwargs["max_episode_steps"] = settings["max_episode_steps"] * (settings["frame_skip"] if atari else 1)
    env = gym.make(settings["id"], **kwargs)
    start = settings["seed"] + EVAL_SEED_OFFSET
    env.action_space.seed(start)
    returns = []
    try:
        for i in range(settings["episodes"]):
            env.reset(seed=start + i)
            total, done = 0.0, False
            while not done:
                _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
                total, done = total + float(reward), terminated or truncated
            returns.append(total)
    finally:
        env.close()
    return returns


def attach(rows: list[Row], folder: Path) -> None:
    """Set ``row.baseline`` for every row that has one; random-policy results are cached in ``folder``."""
    random_policy = RandomPolicy(folder)
    for row in rows:
        row.baseline = chance(row) or bicubic(row) or random_policy(row)
    random_policy.save()
