"""The DQN learner: targets (Double DQN, n-step), Huber loss, target-network updates, epsilon.

Readable top to bottom, as in CleanRL: :func:`td_targets` is the whole of the algorithm's
maths; :class:`Learner` owns the online and target networks and their optimizer.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from tasks.core.optim import build_optimizer, build_scheduler

from .config import DQNConfig


def epsilon_at(step: int, total: int, start: float, end: float, fraction: float) -> float:
    """Linear decay from ``start`` to ``end`` over the first ``fraction`` of ``total`` env steps."""
    span = max(1.0, fraction * total)
    return end + (start - end) * max(0.0, 1.0 - step / span)


@torch.no_grad()
def td_targets(online: nn.Module, target: nn.Module, rewards: torch.Tensor, next_obs: torch.Tensor,
               discounts: torch.Tensor, double: bool) -> torch.Tensor:
    """``r_n + discount * Q_target(s', a*)`` with ``a* = argmax Q_online(s')`` (Double DQN,
    van Hasselt et al. 2016) or ``argmax Q_target(s')`` (Mnih et al. 2015)."""
    next_target = target(next_obs).float()
    chooser = online(next_obs).float() if double else next_target
    best = chooser.argmax(dim=1, keepdim=True)
    return rewards + discounts * next_target.gather(1, best).squeeze(1)


def planned_updates(cfg: DQNConfig) -> int:
    """Gradient steps a run will take (the length of the learning-rate schedule)."""
    a = cfg.agent
    return max(1, (cfg.trainer.max_steps - a.learning_starts) // a.train_freq * a.gradient_steps)


class Learner:
    """Online + target Q-networks, the optimizer, and one gradient step on a replay batch."""

    def __init__(self, model: nn.Module, cfg: DQNConfig, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.online = model.to(device)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.optimizer = build_optimizer(self.online, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, planned_updates(cfg), cfg.optim)
        self.updates = 0

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy actions and their Q-values for a batch of observations."""
        q = self.online(obs.to(self.device)).float()
        best = q.max(dim=1)
        return best.indices.cpu(), best.values.cpu()

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        """One gradient step; returns scalars to log and the TD errors (for priorities)."""
        a = self.cfg.agent
        targets = td_targets(self.online, self.target, batch["rewards"], batch["next_obs"], batch["discounts"],
                             a.double)
        q = self.online(batch["obs"]).float().gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
        per_sample = nn.functional.huber_loss(q, targets, reduction="none", delta=a.huber_delta)
        loss = (batch["weights"] * per_sample).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.optim.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.online.parameters(), self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.updates += 1
        if a.tau < 1.0:
            self.soft_update(a.tau)
        return {"loss": loss.detach(), "q": q.detach().mean(), "td_errors": (targets - q).detach()}

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
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.updates = int(state["updates"])
