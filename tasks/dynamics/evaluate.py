"""Rollout metrics under fixed names, beside the persistence forecast, and the rollout picture.

From the first state of every validation window (``eval.horizon + 1`` observations, one every
``eval.stride`` observations of each validation trajectory) the model rolls out ``eval.horizon``
steps. Errors are in *normalised* units (each dimension divided by its training std), so one
number weighs every dimension alike and systems compare with each other:

* ``rollout_rmse`` (headline, lower is better): RMSE over all steps 1..``eval.horizon`` of all
  windows; ``rollout_rmse_<h>`` the same over steps 1..h for each ``h`` in ``eval.horizons``;
* ``valid_time``: steps until the RMS error over dimensions first exceeds ``eval.threshold``
  (0.3), averaged over windows (``eval.horizon`` when it never does);
* ``energy_drift`` (conservative systems: Lotka-Volterra, spring chain): mean over windows and
  steps of ``|E(predicted) - E(true)|`` relative to the mean ``|E(true)|``, in original units;
* ``rollout_rmse_persistence``: the same RMSE for predicting "no change" (the baseline).

``eval.substeps > 1`` scores residual and ODE models with each interval integrated in that many
sub-steps. ``dynamics_rollouts.png`` draws the first window of ``eval.plots`` trajectories.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .model import unwrap
from .plots import phase_dims, plot_rollouts
from .systems import get_system

PLOT_FILE = "dynamics_rollouts.png"


def invariant_of(info: dict[str, Any]) -> Any:
    """The conserved quantity of the run's generated system, or ``None``."""
    if not info.get("conservative") or "system" not in info:
        return None
    return get_system(info["system"], int(info.get("masses", 3))).invariant


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, info: dict[str, Any], cfg: Any,
             run_dir: Path | None = None) -> dict[str, float]:
    """The metrics of the module docstring over every validation window; the picture into ``run_dir``."""
    net = unwrap(model)
    horizon = cfg.eval.horizon
    mean, std = np.asarray(info["mean"]), np.asarray(info["std"])
    invariant = invariant_of(info)
    step_sq = torch.zeros(horizon, dtype=torch.float64)  # summed over windows: mean over dims of squared error
    base_sq = torch.zeros(horizon, dtype=torch.float64)
    valid, windows, drift, energy = [], 0, 0.0, 0.0
    shown: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for times, states, traj in loader:
        times, states = times.to(device), states.to(device).float()
        pred = net(states[:, 0], times, cfg.eval.substeps).float()
        err = (pred[:, 1:] - states[:, 1:]).pow(2).mean(-1).double().cpu()  # (B, H)
        step_sq += err.sum(0)
        base_sq += (states[:, :1] - states[:, 1:]).pow(2).mean(-1).double().sum(0).cpu()
        over = err.sqrt() > cfg.eval.threshold
        first = torch.where(over.any(1), over.float().argmax(1), torch.full((len(err),), horizon))
        valid += first.tolist()
        windows += len(err)
        if invariant is not None or len(shown) < cfg.eval.plots:
            true_x = states.cpu().numpy() * std + mean
            pred_x = pred.cpu().numpy() * std + mean
            if invariant is not None:
                e_true, e_pred = invariant(true_x[:, 1:]), invariant(pred_x[:, 1:])
                drift += float(np.abs(np.nan_to_num(e_pred - e_true, nan=1e6, posinf=1e6)).sum())
                energy += float(np.abs(e_true).sum())
            for i, k in enumerate(traj.tolist()):
                if k not in shown and len(shown) < cfg.eval.plots:
                    shown[k] = (times[i].cpu().numpy(), true_x[i], pred_x[i])
    mse = step_sq / max(windows, 1)
    metrics = {"rollout_rmse": float(mse.mean().sqrt())}
    for h in sorted(set(cfg.eval.horizons)):
        if h < horizon:
            metrics[f"rollout_rmse_{h}"] = float(mse[:h].mean().sqrt())
    metrics["valid_time"] = float(np.mean(valid)) if valid else 0.0
    if invariant is not None:
        metrics["energy_drift"] = drift / max(energy, 1e-12)
    metrics["rollout_rmse_persistence"] = float((base_sq / max(windows, 1)).mean().sqrt())
    metrics["windows"] = float(windows)
    if run_dir is not None and shown:
        names = list(info.get("names") or [f"x{i}" for i in range(len(mean))])
        title = f"{info.get('dataset', 'data')} ({net.kind}), eval.horizon={horizon}"
        plot_rollouts(list(shown.values()), names, Path(run_dir) / PLOT_FILE, title,
                      phase_dims(names, info.get("system")))
    return metrics
