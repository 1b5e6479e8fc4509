"""Environments: any gymnasium id, Atari through ale-py with gymnasium's own wrappers.

The learner's data are transitions from :mod:`gymnasium.vector` environments; evaluation and
``predict`` use a single environment built the same way (minus reward clipping, so they
report the game's score). Vector envs reset finished sub-environments in the same step
(``AutoresetMode.SAME_STEP``) and hand over the true last observation in ``info``.
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Callable, Iterator
from typing import Any

import gymnasium as gym
import numpy as np

from tasks.core.errors import UserError

from .config import EnvConfig


def is_atari(env_id: str) -> bool:
    return env_id.startswith("ALE/")


def _register_atari() -> bool:
    try:
        import ale_py
    except ImportError:
        return False
    gym.register_envs(ale_py)
    return True


def check_env_id(env_id: str) -> None:
    """Raise a one-line :class:`UserError` for an unknown id, listing the close matches."""
    if is_atari(env_id) and not _register_atari():
        raise UserError(f"env.id={env_id!r} needs ale-py; run `.venv/bin/pip install ale-py` (it ships the ROMs)")
    if env_id in gym.envs.registry:
        return
    _register_atari()  # so Atari names are among the suggestions
    ids = list(gym.envs.registry)
    close = difflib.get_close_matches(env_id, ids, n=5, cutoff=0.5)
    hint = f"close matches: {', '.join(close)}" if close else "see gymnasium.envs.registry for the valid ids"
    raise UserError(f"unknown env.id {env_id!r}; {hint}")


def make_env(cfg: EnvConfig, render_mode: str | None = None, clip_rewards: bool | None = None,
             max_episode_steps: int = 0) -> gym.Env:
    """One environment with the standard preprocessing (Atari: Mnih et al. 2015 as gymnasium has it).

    ``RecordEpisodeStatistics`` sits below reward clipping, so logged returns are game scores.
    """
    check_env_id(cfg.id)
    kwargs: dict[str, Any] = {"render_mode": render_mode}
    steps = max_episode_steps or cfg.max_episode_steps
    if steps > 0:  # in agent steps; the ALE's time limit counts frames
        kwargs["max_episode_steps"] = steps * (cfg.frame_skip if is_atari(cfg.id) else 1)
    if not is_atari(cfg.id):
        return gym.wrappers.RecordEpisodeStatistics(gym.make(cfg.id, **kwargs))
    # AtariPreprocessing does the frame skipping (with max-pooling of the last two frames), so
    # the ALE itself must not skip.
    env = gym.make(cfg.id, frameskip=1, repeat_action_probability=cfg.sticky_actions, **kwargs)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    env = gym.wrappers.AtariPreprocessing(env, noop_max=cfg.noop_max, frame_skip=cfg.frame_skip,
                                          screen_size=cfg.screen_size)
    if cfg.clip_rewards if clip_rewards is None else clip_rewards:
        env = gym.wrappers.ClipReward(env, -1.0, 1.0)
    if cfg.frame_stack > 1:
        env = gym.wrappers.FrameStackObservation(env, cfg.frame_stack)
    return env


THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def _child_threads(threads: int) -> Iterator[None]:
    """Environment that spawned env workers inherit: few BLAS/OpenMP threads each, passive waits.

    Several processes that each start one spinning thread per core stall each other; the
    variables must be set before the child imports NumPy, hence in the parent at spawn time.
    """
    saved = {k: os.environ.get(k) for k in (*THREAD_VARS, "OMP_WAIT_POLICY")}
    os.environ.update({k: str(threads) for k in THREAD_VARS})
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _env_fn(cfg: EnvConfig) -> Callable[[], gym.Env]:
    def build() -> gym.Env:
        return make_env(cfg)

    return build


def make_vector_env(cfg: EnvConfig) -> gym.vector.VectorEnv:
    """``cfg.num_envs`` copies, stepped in this process (sync) or in subprocesses (async)."""
    check_env_id(cfg.id)
    if cfg.num_envs < 1:
        raise UserError(f"env.num_envs={cfg.num_envs} is not valid; give 1 or more")
    mode = gym.vector.AutoresetMode.SAME_STEP
    if cfg.vectorization == "sync":
        return gym.vector.SyncVectorEnv([_env_fn(cfg)] * cfg.num_envs, autoreset_mode=mode)
    if cfg.vectorization == "async":
        # "spawn": a fork of a process that already runs torch threads can deadlock.
        with _child_threads(max(1, cfg.env_threads)):
            return gym.vector.AsyncVectorEnv([_env_fn(cfg)] * cfg.num_envs, autoreset_mode=mode, context="spawn")
    raise UserError(f"env.vectorization={cfg.vectorization!r} is not valid; choose sync or async")


def env_info(cfg: EnvConfig) -> dict[str, Any]:
    """What the Q-network needs to know: observation shape/dtype and the number of actions."""
    env = make_env(cfg)
    try:
        obs_space, act_space = env.observation_space, env.action_space
    finally:
        env.close()
    if not isinstance(act_space, gym.spaces.Discrete):
        raise UserError(f"env.id={cfg.id!r} has a {type(act_space).__name__} action space; DQN needs discrete "
                        "actions (e.g. CartPole-v1, Acrobot-v1, LunarLander-v3, ALE/*)")
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) not in (1, 3):
        raise UserError(f"env.id={cfg.id!r} has observations {obs_space}; the Q-networks take vectors (D,) "
                        "or stacked frames (C, H, W)")
    return {"env_id": cfg.id, "obs_shape": list(obs_space.shape), "obs_dtype": str(obs_space.dtype),
            "num_actions": int(act_space.n), "pixels": len(obs_space.shape) == 3}


def final_observations(next_obs: np.ndarray, infos: dict[str, Any], done: np.ndarray) -> np.ndarray:
    """``next_obs`` with the true last observation of every sub-env that just finished."""
    real = next_obs.copy()
    if done.any() and "final_obs" in infos:
        for i in np.flatnonzero(infos["_final_obs"]):
            real[i] = infos["final_obs"][i]
    return real


def finished_episodes(infos: dict[str, Any]) -> list[tuple[float, int]]:
    """(return, length) of every episode that ended in this vector step (game score on Atari)."""
    final = infos.get("final_info", {})
    if "episode" not in final:
        return []
    mask = final["_episode"]
    return [(float(final["episode"]["r"][i]), int(final["episode"]["l"][i])) for i in np.flatnonzero(mask)]
