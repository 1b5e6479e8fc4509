"""The dynamics task end to end on tiny data: generation, folders, the three models, refinement, predict."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

import backbones
import tasks
from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.dynamics.config import DataConfig, DynamicsConfig
from tasks.dynamics.data import folder, generated
from tasks.dynamics.model import DynamicsModel, rollout
from tasks.dynamics.systems import SYSTEMS, get_system
from tasks.registry import load_task


def test_generation_is_deterministic_from_the_seed_and_cached(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RSUITE_CACHE", str(tmp_path))
    cfg = DataConfig(system="lorenz", num_train=2, num_val=1, length=20)
    train, val = generated(cfg)
    cached = sorted((tmp_path / "dynamics").glob("lorenz-*.npz"))
    assert len(cached) == 1
    cached[0].unlink()  # generated again from scratch: the same numbers
    again, _ = generated(cfg)
    assert all(np.array_equal(a.x, b.x) for a, b in zip(train, again))
    other, _ = generated(DataConfig(system="lorenz", num_train=2, num_val=1, length=20, seed=1))
    assert not np.allclose(train[0].x, other[0].x)
    assert train[0].x.shape == (20, 3) and len(val) == 1
    noisy, _ = generated(DataConfig(system="lorenz", num_train=2, num_val=1, length=20, noise=0.1))
    assert 0 < np.abs(noisy[0].x - train[0].x).mean() < 2.0


@pytest.mark.parametrize("name", SYSTEMS)
def test_systems_are_integrated_tightly_and_conserve_their_invariants(name) -> None:
    system = get_system(name, masses=4)
    _, x = system.trajectory(np.random.default_rng(0), 50, system.dt)
    assert x.shape == (50, system.dim) and np.isfinite(x).all()
    if system.invariant is not None:  # Lotka-Volterra and the spring chain: conserved to the solver's tolerance
        e = system.invariant(x)
        assert np.abs(e - e[0]).max() < 1e-7 * max(1.0, abs(e[0]))
    if name == "pendulum":  # damped: energy falls
        energy = 0.5 * x[:, 1] ** 2 + 1 - np.cos(x[:, 0])
        assert energy[-1] < energy[0]


def _model(kind: str, solver: str = "rk4") -> DynamicsModel:
    torch.manual_seed(0)
    shortcut = "none" if kind == "plain" else "identity"
    body = backbones.create("resmlp", in_channels=2, width=8, depth=1, shortcut=shortcut)
    model = DynamicsModel(body, 2, kind, time_scale=0.1, solver=solver)
    torch.nn.init.normal_(model.head.weight, std=0.3)  # a non-zero field (the head starts at zero)
    return model


def test_rollout_interface_substeps_and_the_plain_refusal() -> None:
    torch.manual_seed(0)
    x0, times = torch.randn(3, 2), torch.tensor([0.0, 0.1, 0.25, 0.3])  # irregular steps
    res = _model("residual")
    out = rollout(res, x0, times)
    assert out.shape == (3, 4, 2) and torch.equal(out[:, 0], x0)
    with torch.no_grad():  # one step is x + (h / time_scale) f(x); k sub-steps are k Euler steps of h/k
        f = res.field(x0)
        assert torch.allclose(out[:, 1], x0 + 1.0 * f, atol=1e-6)
        half = x0 + 0.5 * f
        assert torch.allclose(rollout(res, x0, times[:2], substeps=2)[:, 1], half + 0.5 * res.field(half), atol=1e-6)
    fine, finer = rollout(res, x0, times, substeps=8), rollout(res, x0, times, substeps=64)
    assert (fine - finer).abs().max() < (out - finer).abs().max()  # Euler converges as the sub-step shrinks
    euler = _model("ode", solver="euler")  # the same f: the ODE model with one Euler step is the residual model
    euler.load_state_dict(res.state_dict())
    assert torch.allclose(rollout(euler, x0, times), out, atol=1e-6)
    rk4 = _model("ode")
    rk4.load_state_dict(res.state_dict())
    # both near the exact flow: RK4 with 2 sub-steps far closer to 64 Euler sub-steps than one Euler step is
    assert (rollout(rk4, x0, times, substeps=2) - finer).abs().max() < 0.2 * (out - finer).abs().max()
    plain = _model("plain")
    assert rollout(plain, x0, times).shape == (3, 4, 2)
    with pytest.raises(ValueError, match="a plain model cannot refine its step"):
        rollout(plain, x0, times, substeps=2)
    batched = torch.stack([times, times * 2])  # per-sample times
    assert rollout(res, x0[:2], batched).shape == (2, 4, 2)


@pytest.mark.parametrize(("recipe", "kind"), [("pendulum_resmlp", "residual"), ("pendulum_plain", "plain"),
                                              ("pendulum_ode", "ode")])
def test_each_model_trains_and_evaluates(tiny_dyn, recipe, kind) -> None:
    run = tasks.train("dynamics", tiny_dyn, recipe=recipe)
    loaded = tasks.load_run(run.dir)
    assert loaded.model.kind == kind
    metrics = tasks.evaluate(run.dir)
    names = {"rollout_rmse", "rollout_rmse_1", "rollout_rmse_5", "valid_time", "rollout_rmse_persistence"}
    assert names <= set(metrics)
    assert "energy_drift" not in metrics  # the damped pendulum is not conservative
    assert 0 < metrics["rollout_rmse_1"] <= metrics["rollout_rmse"] * 1.5 and 0 <= metrics["valid_time"] <= 10
    assert (run.dir / "dynamics_rollouts.png").stat().st_size > 10_000
    info = json.loads((run.dir / "data_info.json").read_text())
    assert len(info["mean"]) == len(info["std"]) == 2 and info["time_scale"] == pytest.approx(0.1)
    run_info = json.loads((run.dir / "run.json").read_text())
    assert (run_info["headline"], run_info["higher_is_better"]) == ("rollout_rmse", False)


def test_conservative_system_reports_energy_drift_and_eval_substeps(tiny_dyn) -> None:
    run = tasks.train("dynamics", [*tiny_dyn, "data.system=spring_chain", "data.masses=2"])
    metrics = tasks.evaluate(run.dir)
    assert metrics["energy_drift"] >= 0 and json.loads((run.dir / "data_info.json").read_text())["dim"] == 4
    loaded = tasks.load_run(run.dir)
    cfg = dataclasses.replace(loaded.cfg, eval=dataclasses.replace(loaded.cfg.eval, substeps=4))
    refined = load_task("dynamics").final_metrics(cfg, loaded.model, loaded.info, None, loaded.device)
    assert refined["rollout_rmse"] != metrics["rollout_rmse"]  # the same field, integrated in 4 sub-steps
    plain = tasks.train("dynamics", [*tiny_dyn, "trainer.run_name=p", "backbone.shortcut=none"]).dir
    with pytest.raises(UserError, match="a plain model cannot refine its step"):
        load_task("dynamics").check(load_config(DynamicsConfig, None, ["backbone.shortcut=none", "eval.substeps=2"]))
    assert tasks.load_run(plain).model.kind == "plain"


def test_folders_of_npz_and_csv_with_irregular_times_train_and_evaluate(tiny_dyn, trajectory_folder) -> None:
    train, val, names = folder(DataConfig(root=str(trajectory_folder), val_every=3))
    assert [p.source.rsplit("/", 1)[-1] for p in val] == ["traj2.npz", "traj5.csv"]  # every 3rd file by name
    assert len(train) == 4 and names == ["a", "b"]
    run = tasks.train("dynamics", [*tiny_dyn, f"data.root={trajectory_folder}", "data.val_every=3"])
    info = json.loads((run.dir / "data_info.json").read_text())
    assert info["dataset"] == "folder" and not info["regular"] and info["names"] == ["a", "b"]
    assert tasks.evaluate(run.dir)["rollout_rmse"] > 0


def test_bad_trajectory_files_are_skipped_or_named(tiny_dyn, trajectory_folder, rsuite, capsys) -> None:
    (trajectory_folder / "zz_broken.npz").write_bytes(b"not a zip")
    (trajectory_folder / "zz_backwards.csv").write_text("t,a,b\n1,0,0\n0.5,1,1\n")
    with pytest.raises(UserError, match=r"zz_backwards\.csv cannot be read \(its times t are not strictly"):
        folder(DataConfig(root=str(trajectory_folder), strict=True))
    train, val, _ = folder(DataConfig(root=str(trajectory_folder), val_every=3))
    assert len(train) + len(val) == 6
    assert "zz_broken.npz (not a .npz archive" in capsys.readouterr().err
    code, _, err = rsuite("train", "dynamics", *tiny_dyn, f"data.root={trajectory_folder}", "data.strict=true")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "zz_backwards.csv" in lines[0], err


def test_predict_writes_csv_and_png(tiny_dyn, tmp_path, rsuite) -> None:
    run = tasks.train("dynamics", tiny_dyn)
    init = tmp_path / "init.csv"
    init.write_text("theta,omega\n1.0,0.0\n")
    code, out, err = rsuite("predict", str(run.dir), str(init), "--horizon", "7", "--out", str(tmp_path / "p"))
    assert code == 0, err
    record = json.loads(out.splitlines()[0])
    table = np.loadtxt(record["out"], delimiter=",", skiprows=1)
    assert table.shape == (8, 3) and table[0, 1:].tolist() == [1.0, 0.0]
    assert np.allclose(np.diff(table[:, 0]), 0.1) and (tmp_path / "p" / "init_rollout.png").stat().st_size > 5_000
    trajectory = tmp_path / "traj.csv"  # a whole trajectory: rolled out over its own times, scored against it
    trajectory.write_text("t,theta,omega\n0,1,0\n0.1,0.99,-0.08\n0.3,0.96,-0.25\n")
    code, out, _ = rsuite("predict", str(run.dir), str(trajectory))
    assert code == 0 and "rmse_normalised" in json.loads(out)
    code, _, err = rsuite("predict", str(run.dir), str(init), "--horizon", "0")
    assert code == 2 and "--horizon" in err
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b,c\n1,2,3\n")
    code, _, err = rsuite("predict", str(run.dir), str(wrong))
    assert code == 2 and "wrong.csv has 3 state columns" in err
