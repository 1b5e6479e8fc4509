"""Replay memory: n-step transitions, uniform or proportional prioritised sampling.

Each stored transition is ``(obs, action, reward_n, next_obs, discount)`` where
``reward_n = sum_k gamma^k r_{t+k}`` over up to ``n`` steps and ``discount = gamma^m`` (``m``
the steps actually summed) or 0 when the episode *terminated* inside them, so the target is
always ``reward_n + discount * Q_target(next_obs)`` - time-limit truncations still bootstrap.

Observations keep their dtype: Atari frames stay uint8 (a quarter of float32). For stacked
frames the next observation equals the current one shifted by one frame plus a new frame,
so only that new frame is stored: ``k + 1`` frames per transition instead of ``2k``.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import torch


class NStepAccumulator:
    """Turns one environment's step stream into n-step transitions (one deque per sub-env)."""

    def __init__(self, num_envs: int, n: int, gamma: float) -> None:
        self.n, self.gamma = n, gamma
        self.queues: list[deque] = [deque() for _ in range(num_envs)]

    def _emit(self, queue: deque, next_obs: np.ndarray, terminated: bool) -> tuple:
        obs, action = queue[0][0], queue[0][1]
        reward = sum(self.gamma ** k * step[2] for k, step in enumerate(queue))
        discount = 0.0 if terminated else self.gamma ** len(queue)
        return obs, action, reward, next_obs, discount

    def add(self, env: int, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray,
            terminated: bool, truncated: bool) -> list[tuple]:
        """Record one step of sub-env ``env``; returns the transitions that became complete."""
        queue = self.queues[env]
        queue.append((obs, action, float(reward)))
        out = []
        if terminated or truncated:  # flush: every pending start sees the episode's end
            while queue:
                out.append(self._emit(queue, next_obs, terminated))
                queue.popleft()
        elif len(queue) == self.n:
            out.append(self._emit(queue, next_obs, False))
            queue.popleft()
        return out

    def reset(self) -> None:
        for queue in self.queues:
            queue.clear()


class ReplayBuffer:
    """Ring buffer of transitions in NumPy; ``sample`` returns torch tensors on ``device``."""

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: np.dtype | str,
                 prioritized: bool = False, alpha: float = 0.6, eps: float = 1e-6) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity {capacity} is not valid; give agent.buffer_size >= 1")
        self.capacity, self.obs_shape = capacity, tuple(obs_shape)
        dtype = np.dtype(obs_dtype)
        self.stacked = dtype == np.uint8 and len(self.obs_shape) == 3 and self.obs_shape[0] > 1
        self.obs = np.zeros((capacity, *self.obs_shape), dtype=dtype)
        next_shape = (1, *self.obs_shape[1:]) if self.stacked else self.obs_shape
        self.next_obs = np.zeros((capacity, *next_shape), dtype=dtype)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.discounts = np.zeros(capacity, dtype=np.float32)
        self.prioritized, self.alpha, self.eps = prioritized, alpha, eps
        self.priorities = np.zeros(capacity, dtype=np.float64)
        self.max_priority = 1.0
        self.pos, self.size = 0, 0

    def __len__(self) -> int:
        return self.size

    def add(self, obs: np.ndarray, action: int, reward: float, next_obs: np.ndarray, discount: float) -> None:
        i = self.pos
        self.obs[i] = obs
        self.next_obs[i] = next_obs[-1:] if self.stacked else next_obs
        self.actions[i], self.rewards[i], self.discounts[i] = action, reward, discount
        # New transitions get the highest priority seen, so each is replayed at least once soon.
        self.priorities[i] = self.max_priority
        self.pos, self.size = (i + 1) % self.capacity, min(self.size + 1, self.capacity)

    def _next(self, idx: np.ndarray) -> np.ndarray:
        if not self.stacked:
            return self.next_obs[idx]
        return np.concatenate([self.obs[idx, 1:], self.next_obs[idx]], axis=1)

    def sample(self, batch_size: int, rng: np.random.Generator, device: torch.device,
               beta: float = 1.0) -> dict[str, torch.Tensor]:
        """A batch (uniform, or proportional to ``priority^alpha`` with importance weights)."""
        if self.prioritized:
            probs = self.priorities[:self.size] ** self.alpha
            probs /= probs.sum()
            idx = rng.choice(self.size, size=batch_size, p=probs)
            # w_i = (N P(i))^-beta, normalised by the largest possible weight (Schaul et al. 2016).
            weights = (self.size * probs[idx]) ** -beta / (self.size * probs.min()) ** -beta
        else:
            idx = rng.integers(0, self.size, size=batch_size)
            weights = np.ones(batch_size)

        def put(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a)).to(device, non_blocking=True)

        return {"obs": put(self.obs[idx]), "actions": put(self.actions[idx]), "rewards": put(self.rewards[idx]),
                "next_obs": put(self._next(idx)), "discounts": put(self.discounts[idx]),
                "weights": put(weights.astype(np.float32)), "indices": torch.from_numpy(idx)}

    def update_priorities(self, indices: torch.Tensor, td_errors: torch.Tensor) -> None:
        if not self.prioritized:
            return
        p = td_errors.detach().abs().double().cpu().numpy() + self.eps
        self.priorities[indices.numpy()] = p
        self.max_priority = max(self.max_priority, float(p.max()))

    # ---------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, Any]:
        """Weights-only-safe tensors (for ``data.root``/replay.pt)."""
        n = self.size
        return {"obs": torch.from_numpy(self.obs[:n].copy()), "next_obs": torch.from_numpy(self.next_obs[:n].copy()),
                "actions": torch.from_numpy(self.actions[:n].copy()),
                "rewards": torch.from_numpy(self.rewards[:n].copy()),
                "discounts": torch.from_numpy(self.discounts[:n].copy()),
                "priorities": torch.from_numpy(self.priorities[:n].copy()),
                "pos": self.pos, "size": n, "max_priority": self.max_priority}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        n = min(int(state["size"]), self.capacity)
        for name in ("obs", "next_obs", "actions", "rewards", "discounts", "priorities"):
            getattr(self, name)[:n] = state[name][:n].numpy()
        self.size, self.pos = n, int(state["pos"]) % self.capacity
        self.max_priority = float(state["max_priority"])
