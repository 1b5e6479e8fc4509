"""Fixtures for the dynamics tests: tiny generated systems and folders of trajectories."""

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def tiny_dyn(tmp_path, monkeypatch) -> list[str]:
    """Overrides for a seconds-long run: 6 short pendulum trajectories, a tiny MLP, a few steps."""
    monkeypatch.setenv("RSUITE_CACHE", str(tmp_path / "cache"))
    return ["data.num_train=4", "data.num_val=2", "data.length=24", "data.batch_size=16", "model.horizon=4",
            "eval.horizon=10", "eval.horizons=[1,5]", "eval.stride=5", "eval.plots=2",
            "backbone.options.width=16", "backbone.options.depth=1", "trainer.max_steps=4", "trainer.eval_every=2",
            "trainer.log_every=1", "trainer.progress=false", f"trainer.runs_dir={tmp_path / 'runs'}",
            "trainer.run_name=t", "trainer.threads=1"]


def spiral(t: np.ndarray, phase: float) -> np.ndarray:
    """A damped rotation: a smooth 2-D trajectory with a known form."""
    return np.stack([np.exp(-0.1 * t) * np.cos(t + phase), np.exp(-0.1 * t) * np.sin(t + phase)], axis=1)


@pytest.fixture
def trajectory_folder(tmp_path) -> Path:
    """Six trajectories with irregular time stamps: three .npz, three .csv."""
    root = tmp_path / "trajectories"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        t = np.cumsum(rng.uniform(0.05, 0.15, 20))
        x = spiral(t, phase=i)
        if i % 2:
            np.savetxt(root / f"traj{i}.csv", np.column_stack([t, x]), delimiter=",", header="t,a,b", comments="")
        else:
            np.savez(root / f"traj{i}.npz", t=t, x=x)
    return root
