"""One observation interval, three ways, and the rollout the task trains and scores.

A state ``x`` (normalised per dimension, see :mod:`.data`) moves over an interval of length
``h`` (the time to the next observation, so irregular time stamps work). Time is measured in
``time_scale`` units (the median training interval), so the learned field is about one step's
change whatever the data's clock: ``u = h / time_scale``.

* ``residual``: ``x + u * f(x)``, one explicit Euler step of the learned field ``f`` = registry
  backbone + linear head. ``substeps=k`` takes ``k`` Euler steps of ``u / k``: the same ``f``
  integrated more finely (the reading of a residual block as an ODE solver step).
* ``plain``: ``g(x)``, the next state directly (same backbone and head, no skip anywhere: the
  backbone runs with ``shortcut=none``). It is a map of one interval and cannot refine its step.
* ``ode``: ``dx/ds = f(x)`` integrated over ``s in [0, u]`` by torchdiffeq (``model.solver``), a
  Neural ODE (Chen et al. 2018). With ``solver=euler, ode_steps=1`` it computes exactly the
  residual model.

The head of ``f`` starts at zero for ``residual`` and ``ode``: the untrained model predicts no
change (the persistence forecast) and learns the motion from there.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from tasks.core.backbone import build_backbone
from tasks.core.errors import UserError

from .config import DynamicsConfig

KINDS = ("residual", "plain", "ode")
SOLVERS = ("euler", "midpoint", "rk4", "dopri5")
FIXED_GRID = ("euler", "midpoint", "rk4")
PLAIN_REFUSAL = "a plain model cannot refine its step"


def resolve_kind(cfg: DynamicsConfig) -> str:
    """``model.kind``, with ``auto`` read from the backbone: ``shortcut=none`` is the plain twin."""
    if cfg.model.kind == "auto":
        return "plain" if cfg.backbone.shortcut == "none" else "residual"
    return cfg.model.kind


class DynamicsModel(nn.Module):
    """State ``(B, D)`` at the first of ``T`` times -> states ``(B, T, D)`` at all of them (module docstring)."""

    def __init__(self, body: nn.Module, dim: int, kind: str, time_scale: float, solver: str = "rk4",
                 ode_steps: int = 1, rtol: float = 1e-4, atol: float = 1e-5) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind={kind!r}; choose one of {KINDS}")
        self.body, self.kind, self.time_scale = body, kind, float(time_scale)
        self.head = nn.Linear(body.num_features, dim)
        self.solver, self.ode_steps, self.rtol, self.atol = solver, ode_steps, rtol, atol
        if kind != "plain":
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def field(self, x: torch.Tensor) -> torch.Tensor:
        """``f(x)`` (residual, ode: the change per ``time_scale``) or ``g(x)`` (plain: the next state)."""
        return self.head(self.body(x)[-1])

    def step(self, x: torch.Tensor, u: torch.Tensor, substeps: int = 1) -> torch.Tensor:
        """The state one interval of ``u`` time-scale units (``(B, 1)``) after ``x``, in ``substeps`` equal parts."""
        if substeps < 1:
            raise ValueError(f"substeps={substeps} must be >= 1")
        if self.kind == "plain":
            if substeps != 1:
                raise ValueError(PLAIN_REFUSAL)
            return self.field(x)
        if self.kind == "residual":
            for _ in range(substeps):
                x = x + (u / substeps) * self.field(x)
            return x
        from torchdiffeq import odeint

        # Every sample integrates its own interval u: on s in [0, 1] the field is u * f (same solution).
        parts = substeps * (self.ode_steps if self.solver in FIXED_GRID else 1)
        grid = torch.linspace(0.0, 1.0, parts + 1, dtype=x.dtype, device=x.device)
        options = {"rtol": self.rtol, "atol": self.atol} if self.solver == "dopri5" else {}
        return odeint(lambda _s, y: u * self.field(y), x, grid, method=self.solver, **options)[-1]

    def forward(self, x0: torch.Tensor, times: torch.Tensor, substeps: int = 1) -> torch.Tensor:
        """Roll ``x0`` (B, D) out over ``times`` ((T,) shared, or (B, T)); ``[:, 0]`` is ``x0`` itself."""
        if times.dim() == 1:
            times = times.expand(x0.shape[0], -1)
        steps = (torch.diff(times.double(), dim=1) / self.time_scale).to(x0.dtype)
        states, x = [x0], x0
        for k in range(steps.shape[1]):
            x = self.step(x, steps[:, k: k + 1], substeps)
            states.append(x)
        return torch.stack(states, dim=1)


def rollout(model: nn.Module, x0: torch.Tensor, times: torch.Tensor, substeps: int = 1) -> torch.Tensor:
    """States ``(B, T, D)`` at ``times`` (T,) from ``x0`` (B, D), all in normalised units.

    ``substeps=k`` integrates each observation interval in ``k`` equal sub-steps of the learned
    field (residual: ``k`` Euler steps ``x + (h/k) f(x)``; ode: ``k`` sub-intervals of the
    solver); a plain model raises ``ValueError("a plain model cannot refine its step")``.
    """
    return model(x0, times, substeps)


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside ``torch.compile`` / DDP wrappers."""
    for attr in ("_orig_mod", "module", "_orig_mod"):
        model = getattr(model, attr, model)
    return model


def check_settings(cfg: DynamicsConfig) -> None:
    """Model and evaluation settings that cannot work, found before any trajectory is generated."""
    m, e = cfg.model, cfg.eval
    kind = resolve_kind(cfg)
    checks = [
        (m.kind in ("auto", *KINDS), f"model.kind={m.kind!r} is not valid; choose auto, residual, plain or ode"),
        (m.solver in SOLVERS, f"model.solver={m.solver!r} is not valid; choose one of: {', '.join(SOLVERS)}"),
        (m.horizon >= 1, f"model.horizon={m.horizon} must be >= 1 (steps rolled out in training)"),
        (m.ode_steps >= 1, f"model.ode_steps={m.ode_steps} must be >= 1"),
        (m.rtol > 0 and m.atol > 0, f"model.rtol={m.rtol} and model.atol={m.atol} must be > 0"),
        (e.horizon >= 1, f"eval.horizon={e.horizon} must be >= 1"),
        (all(1 <= h <= e.horizon for h in e.horizons),
         f"eval.horizons={list(e.horizons)} must each be in 1..eval.horizon={e.horizon}"),
        (e.stride >= 1, f"eval.stride={e.stride} must be >= 1"),
        (e.substeps >= 1, f"eval.substeps={e.substeps} must be >= 1"),
        (kind != "plain" or e.substeps == 1,
         f"eval.substeps={e.substeps}: {PLAIN_REFUSAL} (model.kind=plain); use 1, or a residual or ode model"),
        (e.threshold > 0, f"eval.threshold={e.threshold} must be > 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)


def build_model(cfg: DynamicsConfig, info: dict[str, Any]) -> DynamicsModel:
    """The model of ``model.kind`` around a vector backbone from the registry, for ``info["dim"]`` states."""
    check_settings(cfg)
    body = build_backbone(cfg.backbone, "vector", in_channels=int(info["dim"]))
    m = cfg.model
    return DynamicsModel(body, int(info["dim"]), resolve_kind(cfg), float(info["time_scale"]), m.solver,
                         m.ode_steps, m.rtol, m.atol)


def loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor, Any],
         cfg: DynamicsConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Multi-step rollout loss: MSE (normalised units) over the ``model.horizon`` states after each window's first.

    Errors made early are carried through the later steps, so the model is trained for what it
    is scored on (rollouts), not only for the next observation.
    """
    times, states, _ = batch
    pred = model(states[:, 0], times)
    value = F.mse_loss(pred[:, 1:], states[:, 1:])
    last = (pred[:, -1].detach() - states[:, -1]).pow(2).mean().sqrt()
    return value, {"rmse_last_step": last}
