"""The DQN learner: targets (Double DQN, n-step), Huber loss, target-network updates, epsilon.

Readable top to bottom, as in CleanRL: :func:`td_targets` is the whole of the algorithm's
maths; :class:`Learner` owns the online and target networks and their optimizer.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from tasks.core.optim import build_optimizer, build_scheduler

from .config import DQNConfig


def epsilon_at(step: int, total: int, start: float, end: float, fraction: float) -> float:
    """Linear decay from ``start`` to ``end`` over the first ``fraction`` of ``total`` env steps."""
    span = max(1.0, fraction * total)
    return end + (start - end) * max(0.0, 1.0 - step / span)


def td_targets(next_q_target: torch.Tensor, next_q_online: torch.Tensor | None, rewards: torch.Tensor,
               discounts: torch.Tensor) -> torch.Tensor:
    """``r_n + discount * Q_target(s', a*)`` from the two networks' Q-values at ``s'``: with
    ``a* = argmax Q_online(s')`` (Double DQN, van Hasselt et al. 2016) when ``next_q_online`` is
    given, else ``a* = argmax Q_target(s')`` (Mnih et al. 2015)."""
    chooser = next_q_target if next_q_online is None else next_q_online
    best = chooser.argmax(dim=1, keepdim=True)
    return rewards + discounts * next_q_target.gather(1, best).squeeze(1)


def planned_updates(cfg: DQNConfig) -> int:
    """Gradient steps a run will take (the length of the learning-rate schedule)."""
    a = cfg.agent
    return max(1, (cfg.trainer.max_steps - a.learning_starts) // a.train_freq * a.gradient_steps)


def merge_param_groups(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """One parameter group when the groups differ only in their parameters.

    The optimizer puts norms and biases in a group of their own (no weight decay); DQN runs
    with ``optim.weight_decay=0``, so both groups are the same, and a fused step costs a call
    per group: one group halves that (about 130 us of a 1.5 ms CartPole update).
    """
    groups = optimizer.param_groups
    settings = [{k: v for k, v in g.items() if k != "params"} for g in groups]
    if len(groups) > 1 and all(s == settings[0] for s in settings) and not optimizer.state:
        for g in groups[1:]:
            groups[0]["params"].extend(g["params"])
        del groups[1:]
    return optimizer


def merge_saved_groups(state: dict[str, Any], groups: int) -> dict[str, Any]:
    """An optimizer state saved with two groups, merged for one (checkpoints written before
    :func:`merge_param_groups`); parameter ids are positions, so concatenating keeps them."""
    saved = state["param_groups"]
    if groups != 1 or len(saved) == 1:
        return state
    merged = {**saved[0], "params": [i for g in saved for i in g["params"]]}
    return {**state, "param_groups": [merged]}


class Learner:
    """Online + target Q-networks, the optimizer, and one gradient step on a replay batch.

    A gradient step is launch-bound for CartPole-sized networks (a few microseconds of maths per
    op, tens of ops), so it keeps the op count down: a fused optimizer, one foreach gradient-norm
    clip, and - for vector observations - one online forward over ``[obs; next_obs]`` that serves
    both the loss and Double DQN's action choice. Frames keep two passes: the conv backward of
    the joint batch would double the learner's dominant cost.
    """

    def __init__(self, model: nn.Module, cfg: DQNConfig, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.online = model.to(device)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.params = [p for p in self.online.parameters() if p.requires_grad]
        self.optimizer = merge_param_groups(build_optimizer(self.online, cfg.optim, fused=True))
        self.scheduler = build_scheduler(self.optimizer, planned_updates(cfg), cfg.optim)
        self.updates = 0
        batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.online.modules())
        # One joint forward changes nothing per sample unless a layer mixes the batch (BatchNorm).
        self.joint = cfg.agent.double and not getattr(model, "pixels", False) and not batch_norm

    @torch.no_grad()
    def act(self, obs: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Greedy actions and their Q-values (host arrays) for a batch of observations."""
        x = torch.as_tensor(obs)
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        # One small device-to-host copy of the Q-table; arg-max and max in NumPy (a microsecond each).
        q = self.online(x).float().cpu().numpy()
        return q.argmax(1), q.max(1)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        """One gradient step; returns scalars to log and the TD errors (for priorities)."""
        a = self.cfg.agent
        obs, next_obs = batch["obs"], batch["next_obs"]
        with torch.no_grad():
            next_target = self.target(next_obs).float()
        if self.joint:
            q_all = self.online(torch.cat([obs, next_obs])).float()
            q_all, next_online = q_all[:len(obs)], q_all[len(obs):].detach()
        else:
            q_all = self.online(obs).float()
            with torch.no_grad():
                next_online = self.online(next_obs).float() if a.double else None
        targets = td_targets(next_target, next_online, batch["rewards"], batch["discounts"])
        q = q_all.gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
        per_sample = nn.functional.huber_loss(q, targets, reduction="none", delta=a.huber_delta)
        loss = (batch["weights"] * per_sample).mean() if a.prioritized else per_sample.mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.params, self.cfg.optim.grad_clip, foreach=True)
        self.optimizer.step()
        self.scheduler.step()
        self.updates += 1
        if a.tau < 1.0:
            self.soft_update(a.tau)
        return {"loss": loss.detach(), "q": q.detach().mean(),
                "td_errors": (targets - q).detach() if a.prioritized else None}

    @torch.no_grad()
    def soft_update(self, tau: float) -> None:
        """Polyak averaging ``target <- tau * online + (1 - tau) * target``."""
        torch._foreach_lerp_(list(self.target.parameters()), list(self.online.parameters()), tau)
        for t, o in zip(self.target.buffers(), self.online.buffers()):
            t.copy_(o)

    def hard_update(self) -> None:
        self.target.load_state_dict(self.online.state_dict())

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.online.state_dict(), "target": self.target.state_dict(),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.online.load_state_dict(state["model"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(merge_saved_groups(state["optimizer"], len(self.optimizer.param_groups)))
        self.scheduler.load_state_dict(state["scheduler"])
        self.updates = int(state["updates"])
