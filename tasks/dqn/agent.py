"""The DQN learner: targets (Double DQN, n-step), Huber loss, target-network updates, epsilon.

Readable top to bottom, as in CleanRL: :func:`td_targets` is the whole of the algorithm's
maths; :class:`Learner` owns the online and target networks and their optimizer.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from backbones.blocks import DropPath
from backbones.vector import ResMLP
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


def flatten_param_groups(optimizer: torch.optim.Optimizer) -> list[nn.Parameter]:
    """Each parameter group's parameters as views of one contiguous tensor, which the optimizer steps.

    The module keeps its parameters (same names, shapes and autograd leaves); their storage and
    their gradients become slices of one flat parameter and one flat gradient per group. Adam is
    elementwise and the gradient-norm clip needs only the global norm, so stepping the flat tensor
    is the same maths in a handful of ops instead of a handful per tensor (the CartPole network
    has 24). Gradients accumulate into the slices in place, so they must be zeroed, never set to
    ``None``.
    """
    if optimizer.state:
        raise ValueError("flatten the parameters before the optimizer's first step")
    flats = []
    for group in optimizer.param_groups:
        params = group["params"]
        flat = nn.Parameter(torch.cat([p.detach().reshape(-1) for p in params]))
        flat.grad = torch.zeros_like(flat)
        offset = 0
        for p in params:
            n = p.numel()
            p.data = flat.data[offset:offset + n].view_as(p)
            p.grad = flat.grad[offset:offset + n].view_as(p)
            offset += n
        group["params"] = [flat]
        flats.append(flat)
    return flats


def flatten_saved_state(state: dict[str, Any], sizes: list[list[int]]) -> dict[str, Any]:
    """An optimizer state saved per parameter (checkpoints written before :func:`flatten_param_groups`),
    as one flat state per group: each moment concatenated in the group's parameter order.
    ``sizes[g]``: the element counts of group ``g``'s parameters (zeros fill any without a state)."""
    groups = state["param_groups"]
    if all(len(g["params"]) == 1 for g in groups):  # already flat (or one parameter per group: the same)
        return state
    if [len(g["params"]) for g in groups] != [len(s) for s in sizes]:
        raise ValueError(f"the saved optimizer has {[len(g['params']) for g in groups]} parameters per group, "
                         f"this network {[len(s) for s in sizes]}")
    flat_state: dict[int, dict[str, Any]] = {}
    for i, (group, numels) in enumerate(zip(groups, sizes)):
        entries = [state["state"].get(j) for j in group["params"]]
        first = next((e for e in entries if e), None)
        if first is None:
            continue
        flat_state[i] = {k: v for k, v in first.items() if k == "step"}
        for key in (k for k, v in first.items() if k != "step" and torch.is_tensor(v)):
            flat_state[i][key] = torch.cat([e[key].reshape(-1) if e else first[key].new_zeros(n)
                                            for e, n in zip(entries, numels)])
    return {"state": flat_state, "param_groups": [{**g, "params": [i]} for i, g in enumerate(groups)]}


def clip_grad_norm(grads: list[torch.Tensor], max_norm: float) -> None:
    """Scale ``grads`` in place so that their global L2 norm is at most ``max_norm``: the maths of
    ``torch.nn.utils.clip_grad_norm_`` (``max_norm / (norm + 1e-6)``, capped at 1) without its
    per-call grouping of tensors, which costs more than the clip itself for one flat gradient."""
    norm = torch.linalg.vector_norm(grads[0]) if len(grads) == 1 else \
        torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = (max_norm / (norm + 1e-6)).clamp_(max=1.0)
    for g in grads:
        g.mul_(scale)


def trace(module: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """``module``'s forward as a TorchScript trace that shares its parameters and buffers, so it
    follows every optimizer step and target copy (they write in place). Only for networks whose
    forward has no data-dependent control flow and no randomness (checked by the caller)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the input-shape checks become constants
        return torch.jit.trace(module, example, check_trace=False)


class Learner:
    """Online + target Q-networks, the optimizer, and one gradient step on a replay batch.

    A gradient step is launch-bound for CartPole-sized networks (a few microseconds of maths per
    op, tens of ops), so it keeps the op and call count down:

    * one fused optimizer step and one gradient-norm clip over one flat parameter
      (:func:`flatten_param_groups`) instead of one per tensor;
    * on a CPU, residual-MLP networks run every forward pass (acting, the loss, Double
      DQN's action choice, the target network) as TorchScript traces that share the modules'
      parameters: the same kernels and results without Python's per-module overhead (a
      batch-of-one forward takes half the time);
    * otherwise, for vector observations, one online forward over ``[obs; next_obs]`` serves both
      the loss and Double DQN's action choice. Frames keep two passes: the conv backward of the
      joint batch would double the learner's dominant cost.

    Measured on 2 busy CPU cores, 1 thread (CartPole recipe): an update 2.3 -> 1.9 ms, acting on
    one observation 180 -> 85 us, with identical parameters after 20 updates.
    """

    def __init__(self, model: nn.Module, cfg: DQNConfig, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        self.online = model.to(device)
        self.target = copy.deepcopy(self.online).requires_grad_(False)
        self.optimizer = merge_param_groups(build_optimizer(self.online, cfg.optim, fused=True))
        self.group_sizes = [[p.numel() for p in g["params"]] for g in self.optimizer.param_groups]
        self.flat = flatten_param_groups(self.optimizer)
        self.scheduler = build_scheduler(self.optimizer, planned_updates(cfg), cfg.optim)
        self.updates = 0
        batch_norm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.online.modules())
        pixels = getattr(model, "pixels", False)
        # Traced: the residual MLP, a fixed sequence of ops (an ODE block's adaptive solver is not),
        # without randomness or batch statistics; on CPUs, where it was measured and Python's overhead dominates.
        stochastic = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd, DropPath)
        traced = (device.type == "cpu" and isinstance(getattr(model, "backbone", None), ResMLP)
                  and not any(isinstance(m, stochastic) for m in model.modules()))
        # ``net``/``target_net``: what runs the forward passes (the modules, or traces sharing their parameters)
        self.net, self.target_net = self.online, self.target
        if traced:
            example = torch.zeros(2, model.backbone.in_channels, device=device)  # a batch of vector observations
            self.net, self.target_net = trace(self.online, example), trace(self.target, example)
        # Without traces, one joint online forward over [obs; next_obs] saves a pass's Python overhead;
        # it changes nothing per sample unless a layer mixes the batch (BatchNorm). With them, the
        # traced gradient-free pass over next_obs is cheaper than the joint backward's extra rows.
        self.joint = cfg.agent.double and not pixels and not batch_norm and not traced

    @torch.no_grad()
    def act(self, obs: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Greedy actions and their Q-values (host arrays) for a batch of observations."""
        x = torch.as_tensor(obs)
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        # One small device-to-host copy of the Q-table; arg-max and max in NumPy (a microsecond each).
        q = self.net(x).float().cpu().numpy()
        return q.argmax(1), q.max(1)

    def update(self, batch: dict[str, torch.Tensor]) -> dict[str, Any]:
        """One gradient step; returns scalars to log and the TD errors (for priorities)."""
        a = self.cfg.agent
        obs, next_obs = batch["obs"], batch["next_obs"]
        with torch.no_grad():
            next_target = self.target_net(next_obs).float()
        if self.joint:
            q_all = self.online(torch.cat([obs, next_obs])).float()
            q_all, next_online = q_all[:len(obs)], q_all[len(obs):].detach()
        else:
            q_all = self.net(obs).float()
            with torch.no_grad():
                next_online = self.net(next_obs).float() if a.double else None
        targets = td_targets(next_target, next_online, batch["rewards"], batch["discounts"])
        q = q_all.gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
        per_sample = nn.functional.huber_loss(q, targets, reduction="none", delta=a.huber_delta)
        loss = (batch["weights"] * per_sample).mean() if a.prioritized else per_sample.mean()
        for flat in self.flat:  # zeroed, not set to None: the modules' gradients are views of these
            flat.grad.zero_()
        loss.backward()
        if self.cfg.optim.grad_clip > 0:
            clip_grad_norm([flat.grad for flat in self.flat], self.cfg.optim.grad_clip)
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
        saved = merge_saved_groups(state["optimizer"], len(self.optimizer.param_groups))
        self.optimizer.load_state_dict(flatten_saved_state(saved, self.group_sizes))
        self.scheduler.load_state_dict(state["scheduler"])
        self.updates = int(state["updates"])
