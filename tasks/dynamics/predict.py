"""Roll a trained run out from your initial state: ``rsuite predict RUN_DIR init.csv --horizon N``.

The input is a ``.csv`` or ``.npz`` in the task's trajectory format. One row of states (CSV:
the state columns, with or without a ``t`` column; ``.npz``: ``x`` of shape (D,) or (1, D)) is an
initial state: the model rolls out ``horizon`` steps of the run's median training interval
(``time_scale``) from ``t`` (0 when absent). A whole trajectory (a ``t`` column or array and
several rows) is rolled out from its first state over its own time stamps (``horizon`` cuts it,
or extends it with ``time_scale`` steps) and drawn against it, with the RMSE in normalised units.
Each input gives ``<stem>_rollout.csv`` (``t`` then the state columns: a trajectory file the task
reads back) and ``<stem>_rollout.png`` (time series and phase portrait).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tasks.core.errors import UserError

from .data import BadTrajectory, _read_npz
from .plots import phase_dims, plot_rollouts


def read_initial(path: Path) -> tuple[np.ndarray | None, np.ndarray]:
    """``(t or None, x (T, D))`` from a CSV (header row; ``t`` column optional) or ``.npz`` file."""
    if not path.is_file():
        raise UserError(f"{path} is not a file; give a .csv or .npz initial state or trajectory")
    if path.suffix.lower() == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:
                if "t" not in f.files:
                    if "x" not in f.files:
                        raise BadTrajectory(f"it has no array x (arrays: {', '.join(f.files) or 'none'})")
                    return None, np.atleast_2d(np.asarray(f["x"], np.float64))
            t, x, _ = _read_npz(path)
        except BadTrajectory as err:
            raise UserError(f"{path} cannot be read ({err})") from None
        except (OSError, ValueError) as err:
            raise UserError(f"{path} cannot be read ({type(err).__name__}); give a .npz with x (and t)") from None
        return np.atleast_1d(t), x
    if path.suffix.lower() != ".csv":
        raise UserError(f"{path} is not a .csv or .npz file")
    try:
        with path.open(newline="") as f:
            header = [h.strip().lower() for h in next(csv.reader(f), [])]
        table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2, dtype=np.float64)
    except (UnicodeDecodeError, ValueError) as err:
        raise UserError(f"{path} cannot be read ({str(err).splitlines()[0][:100]}); write a header row, "
                        "then numbers (t optional, then the state)") from None
    if table.size == 0:
        raise UserError(f"{path} holds no state row below its header")
    if header and header[0] == "t":
        return table[:, 0], table[:, 1:]
    return None, table


def predict(run_dir: Path, inputs: list[Path], out: Path | None = None, horizon: int | None = None,
            device: str = "cpu") -> list[dict[str, Any]]:
    """One rollout per input (see the module docstring); returns one record per input."""
    import tasks

    loaded = tasks.load_run(run_dir, device=device)
    cfg, info, net = loaded.cfg, loaded.info, loaded.model
    dim, scale = int(info["dim"]), float(info["time_scale"])
    mean, std = np.asarray(info["mean"]), np.asarray(info["std"])
    names = list(info.get("names") or [f"x{i}" for i in range(dim)])
    if horizon is not None and horizon < 1:
        raise UserError(f"--horizon {horizon} must be >= 1 (steps to roll out)")
    inputs = [Path(p) for p in inputs]
    if out is not None and out.suffix.lower() == ".csv" and len(inputs) != 1:
        raise UserError(f"--out {out} names one CSV but {len(inputs)} inputs were given; pass a folder instead")
    records = []
    for path in inputs:
        t, x = read_initial(path)
        if x.shape[1] != dim:
            raise UserError(f"{path} has {x.shape[1]} state columns; the run models {dim} ({', '.join(names)})")
        trajectory = t is not None and len(x) > 1
        if len(x) > 1 and not trajectory:
            raise UserError(f"{path} has {len(x)} state rows and no t column; give one initial state, "
                            "or a trajectory with a t column")
        if trajectory and not (np.diff(t) > 0).all():
            raise UserError(f"{path}: its times t are not strictly increasing")
        t0 = float(t[0]) if t is not None else 0.0
        if trajectory:
            steps = horizon if horizon is not None else len(t) - 1
            times = t[: steps + 1]
            times = np.concatenate([times, times[-1] + scale * np.arange(1, steps + 2 - len(times))])
        else:
            steps = horizon if horizon is not None else cfg.eval.horizon
            times = t0 + scale * np.arange(steps + 1)
        x0 = torch.from_numpy(((x[0] - mean) / std).astype(np.float32))[None].to(loaded.device)
        with torch.no_grad():
            pred = net(x0, torch.from_numpy(times), cfg.eval.substeps)[0].cpu().numpy() * std + mean
        pred[0] = x[0]  # the given state itself, not its float32 round trip
        dest = out if out is not None and out.suffix.lower() == ".csv" else \
            (out if out is not None else Path(run_dir) / "predictions") / f"{path.stem}_rollout.csv"
        dest.parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(dest, np.column_stack([times, pred]), delimiter=",", header=",".join(["t", *names]),
                   comments="", fmt="%.9g")
        truth = x[: len(times)] if trajectory else None
        picture = plot_rollouts([(times, truth, pred)], names, dest.with_suffix(".png"),
                                f"{path.name}: {loaded.model.kind} rollout, {steps} steps",
                                phase_dims(names, info.get("system")))
        record: dict[str, Any] = {"file": str(path), "out": str(dest), "plot": str(picture), "steps": steps,
                                  "t_end": round(float(times[-1]), 9),
                                  "final_state": [round(float(v), 6) for v in pred[-1]]}
        if truth is not None and len(truth) > 1:
            err = ((pred[1: len(truth)] - truth[1:]) / std) ** 2
            record["rmse_normalised"] = round(float(np.sqrt(err.mean())), 6)
        records.append(record)
    return records
