"""Replay memory: n-step transitions, uniform or proportional prioritised sampling.

Each stored transition is ``(obs, action, reward_n, next_obs, discount)`` where
``reward_n = sum_k gamma^k r_{t+k}`` over up to ``n`` steps and ``discount = gamma^m`` (``m``
the steps actually summed) or 0 when the episode *terminated* inside them, so the target is
always ``reward_n + discount * Q_target(next_obs)`` - time-limit truncations still bootstrap.

Observations keep their dtype: Atari frames stay uint8 (a quarter of float32). For stacked
frames the next observation equals the current one shifted by one frame plus a new frame,
so only that new frame is stored: ``k + 1`` frames per transition instead of ``2k``.

The buffer lives on one device (``device``, by default the learner's): on a GPU the frames,
the sum-tree and the sampling all stay there, so a learner step needs no host round trip.
New transitions cross over once, from pinned memory without blocking the GPU's queue.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .sumtree import SumTree

#: One batch of transitions: (obs, actions, rewards_n, next_obs, discounts), first axis = transition.
Transitions = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class NStepAccumulator:
    """Turns the step stream of ``num_envs`` lock-stepped environments into n-step transitions.

    All sub-envs step together, so the last ``n`` steps of every env sit in one ring of arrays
    (``n x num_envs``) and each call is a few array operations, whatever the number of envs.
    ``count[e]`` is how many of those steps belong to env ``e``'s current episode.
    """

    def __init__(self, num_envs: int, n: int, gamma: float, obs_shape: tuple[int, ...] = (),
                 obs_dtype: np.dtype | str = np.float32) -> None:
        self.n, self.gamma, self.num_envs = n, gamma, num_envs
        self.obs = np.zeros((n, num_envs, *obs_shape), dtype=obs_dtype)
        self.actions = np.zeros((n, num_envs), dtype=np.int64)
        self.rewards = np.zeros((n, num_envs), dtype=np.float64)
        self.count = np.zeros(num_envs, dtype=np.int64)
        self.t = 0
        self.powers = gamma ** np.arange(n + 1, dtype=np.float64)
        self.orders = (np.arange(n)[:, None] + np.arange(n)[None, :]) % n  # orders[k]: the ring read from slot k
        # suffix[j, i] = gamma^(i - j) for i >= j: row j of suffix @ rewards is the discounted
        # return of the transition that starts j steps after the oldest one kept.
        age = np.arange(n)[None, :] - np.arange(n)[:, None]
        self.suffix = np.where(age >= 0, gamma ** np.maximum(age, 0), 0.0)

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
            terminated: np.ndarray, truncated: np.ndarray) -> Transitions | None:
        """Record one vector step; returns the transitions that became complete (env-major), if any.

        An env whose episode ended flushes every pending start (each sees the episode's end);
        any other env with ``n`` steps pending emits its oldest start.
        """
        n = self.n
        slot = self.t % n
        self.obs[slot], self.actions[slot], self.rewards[slot] = obs, actions, rewards
        self.t += 1
        order = self.orders[self.t % n]  # ring slots, oldest first
        count = self.count + 1  # <= n: an env with n pending steps emitted one the step before
        terminated = np.asarray(terminated, bool)
        done = terminated | np.asarray(truncated, bool)
        full = count == n
        if not done.any():  # the common step: envs with n pending steps emit their oldest one
            self.count = count - full
            if not full.any():
                return None
            env = np.flatnonzero(full)
            returns = self.powers[:n] @ self.rewards[order[:, None], env]
            return (self.obs[order[0], env], self.actions[order[0], env], returns.astype(np.float32),
                    np.asarray(next_obs)[env], np.full(len(env), self.powers[n], np.float32))
        start = np.arange(n)[None, :]  # position from the oldest kept step (0) to the newest (n - 1)
        valid = start >= (n - count)[:, None]
        emit = valid & (done[:, None] | ((start == 0) & full[:, None]))  # (env, start)
        self.count = np.where(done, 0, count - full)
        env, pos = np.nonzero(emit)
        returns = self.suffix @ self.rewards[order]  # (start, env)
        slots = order[pos]
        discounts = np.where(terminated[env], 0.0, self.powers[n - pos])
        return (self.obs[slots, env], self.actions[slots, env], returns[pos, env].astype(np.float32),
                np.asarray(next_obs)[env], discounts.astype(np.float32))

    def reset(self) -> None:
        """Forget every pending step (episodes in progress restart)."""
        self.count[:] = 0


def _torch_dtype(dtype: np.dtype | str) -> torch.dtype:
    return torch.from_numpy(np.zeros(0, dtype=np.dtype(dtype))).dtype


class ReplayBuffer:
    """Ring buffer of transitions in torch tensors on ``device``; ``sample`` returns a batch there.

    ``prioritized``: proportional prioritisation, ``P(i) = p_i^alpha / sum_k p_k^alpha`` with
    ``p_i = |TD error| + eps``, kept in a :class:`SumTree`; new transitions get the largest
    priority seen so far, so each is replayed at least once soon.
    """

    FIELDS = ("obs", "next_obs", "actions", "rewards", "discounts")

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: np.dtype | str,
                 prioritized: bool = False, alpha: float = 0.6, eps: float = 1e-6,
                 device: torch.device | str = "cpu", seed: int = 0) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity {capacity} is not valid; give agent.buffer_size >= 1")
        self.capacity, self.obs_shape, self.device = capacity, tuple(obs_shape), torch.device(device)
        dtype = _torch_dtype(obs_dtype)
        self.stacked = dtype == torch.uint8 and len(self.obs_shape) == 3 and self.obs_shape[0] > 1
        next_shape = (1, *self.obs_shape[1:]) if self.stacked else self.obs_shape
        # torch.empty: pages are committed only when written, so a large buffer costs what it holds.
        self.obs = torch.empty((capacity, *self.obs_shape), dtype=dtype, device=self.device)
        self.next_obs = torch.empty((capacity, *next_shape), dtype=dtype, device=self.device)
        self.actions = torch.zeros(capacity, dtype=torch.long, device=self.device)
        self.rewards = torch.zeros(capacity, dtype=torch.float32, device=self.device)
        self.discounts = torch.zeros(capacity, dtype=torch.float32, device=self.device)
        self.prioritized, self.alpha, self.eps = prioritized, alpha, eps
        self.tree = SumTree(capacity, self.device) if prioritized else None
        # A tensor, so raising it after an update needs no device-to-host sync.
        self.max_priority = torch.ones((), dtype=torch.float64, device=self.device)
        self.generator: np.random.Generator | torch.Generator
        self.seed(seed)
        self.pos, self.size = 0, 0
        self._unprioritized = 0  # newest slots added since the last sample: their tree leaves are due
        # On the host, writes go through NumPy views of the same memory: a slice assignment
        # there costs a microsecond, a torch one several (it matters at one env step at a time).
        self._host = {name: getattr(self, name).numpy() for name in self.FIELDS} if self.device.type == "cpu" else None

    def __len__(self) -> int:
        return self.size

    def seed(self, seed: int) -> None:
        """Restart the sampling random stream (on resume, so a resumed run is reproducible):
        NumPy's for a buffer in host memory, a torch generator on the buffer's device otherwise."""
        if self.device.type == "cpu":
            self.generator = np.random.default_rng(seed)
        else:
            self.generator = torch.Generator(self.device)
            self.generator.manual_seed(seed)

    def _put(self, array: np.ndarray | torch.Tensor) -> torch.Tensor:
        t = torch.as_tensor(array)
        if self.device.type == "cuda" and t.device.type == "cpu":
            # Pageable host memory would make the copy wait for the GPU's queue; pinned does not.
            return t.pin_memory().to(self.device, non_blocking=True)
        return t.to(self.device)

    def add(self, obs: np.ndarray, actions: np.ndarray, rewards: np.ndarray, next_obs: np.ndarray,
            discounts: np.ndarray) -> None:
        """Append a batch of transitions (first axis = transition), overwriting the oldest."""
        k = len(actions)
        if k == 0:
            return
        if k > self.capacity:  # only the newest fit
            obs, actions, rewards, next_obs, discounts = (a[-self.capacity:] for a in
                                                          (obs, actions, rewards, next_obs, discounts))
            k = self.capacity
        values = {"obs": obs, "next_obs": next_obs[:, -1:] if self.stacked else next_obs,
                  "actions": actions, "rewards": rewards, "discounts": discounts}
        first = min(k, self.capacity - self.pos)  # up to the ring's end, the rest from slot 0
        for name, value in values.items():
            if self._host is not None:
                store, value = self._host[name], np.asarray(value)
            else:
                store, value = getattr(self, name), self._put(value)
            store[self.pos:self.pos + first] = value[:first]
            if first < k:
                store[:k - first] = value[first:]
        self.pos, self.size = (self.pos + k) % self.capacity, min(self.size + k, self.capacity)
        self._unprioritized = min(self._unprioritized + k, self.capacity)

    def _flush_priorities(self) -> None:
        """Give the slots written since the last sample the current maximum priority, in one tree update."""
        if self.tree is None or self._unprioritized == 0:
            return
        k, self._unprioritized = self._unprioritized, 0
        index = (self.pos - k + torch.arange(k, device=self.device)) % self.capacity
        self.tree.update(index, (self.max_priority ** self.alpha).expand(k))

    def _gather(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(obs, next_obs) of ``idx``. ``index_select`` copies whole rows (9x faster than
        ``tensor[idx]`` for 28 KB frame stacks on a CPU); a next stack reuses the gathered one."""
        obs = self.obs.index_select(0, idx)
        new = self.next_obs.index_select(0, idx)
        return obs, torch.cat([obs[:, 1:], new], dim=1) if self.stacked else new

    def sample(self, batch_size: int, beta: float = 1.0) -> dict[str, torch.Tensor]:
        """A batch on the buffer's device: uniform, or proportional to ``priority^alpha`` with
        importance weights ``w_i = (N P(i))^-beta`` divided by the batch's largest (Schaul et al.'s
        normalisation, which only ever scales updates down)."""
        if self.tree is not None:
            self._flush_priorities()
            idx = self.tree.sample(batch_size, self.generator)
            probs = self.tree.values(idx) / self.tree.total()
            weights = (self.size * probs).pow(-beta)
            weights = (weights / weights.max()).float()
        elif isinstance(self.generator, np.random.Generator):
            idx = torch.from_numpy(self.generator.integers(0, self.size, batch_size))
            weights = torch.ones(batch_size)
        else:
            idx = torch.randint(0, self.size, (batch_size,), generator=self.generator, device=self.device)
            weights = torch.ones(batch_size, device=self.device)
        obs, next_obs = self._gather(idx)
        return {"obs": obs, "actions": self.actions.index_select(0, idx), "rewards": self.rewards.index_select(0, idx),
                "next_obs": next_obs, "discounts": self.discounts.index_select(0, idx), "weights": weights,
                "indices": idx}

    def update_priorities(self, indices: torch.Tensor, td_errors: torch.Tensor) -> None:
        """New priorities ``|TD error| + eps`` of the sampled transitions (stays on the device)."""
        if self.tree is None:
            return
        self._flush_priorities()  # so the new values are not overwritten by a later flush
        p = td_errors.detach().abs().to(self.device, torch.float64) + self.eps
        self.tree.update(indices, p ** self.alpha)
        self.max_priority = torch.maximum(self.max_priority, p.max())

    # ---------------------------------------------------------- persistence
    def priorities(self) -> torch.Tensor:
        """Raw priorities ``p_i`` of the stored transitions (ones for a uniform buffer)."""
        if self.tree is None:
            return torch.ones(self.size, dtype=torch.float64)
        self._flush_priorities()
        return (self.tree.values(torch.arange(self.size, device=self.device)) ** (1.0 / self.alpha)).cpu()

    def state_dict(self) -> dict[str, Any]:
        """Weights-only-safe CPU tensors and numbers (saved as ``data.root``/RUN/replay.pt)."""
        n = self.size
        state: dict[str, Any] = {name: getattr(self, name)[:n].cpu().clone() for name in self.FIELDS}
        return {**state, "priorities": self.priorities(), "pos": self.pos, "size": n,
                "max_priority": float(self.max_priority)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a saved buffer (also one saved with another capacity: the first slots that fit)."""
        n = min(int(state["size"]), self.capacity)
        for name in self.FIELDS:
            getattr(self, name)[:n] = state[name][:n].to(self.device)
        self.size, self.pos = n, int(state["pos"]) % self.capacity
        self.max_priority = torch.tensor(float(state["max_priority"]), dtype=torch.float64, device=self.device)
        self._unprioritized = 0
        if self.tree is not None:
            self.tree.clear()
            p = state["priorities"][:n].to(self.device, torch.float64)
            self.tree.update(torch.arange(n, device=self.device), p.clamp_min(self.eps) ** self.alpha)
