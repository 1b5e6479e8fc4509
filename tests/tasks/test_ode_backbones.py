"""Continuous-depth backbones in the tasks: ``odenet`` classifies, ``ode_mlp`` is a Q-network, NFE is logged."""

import tasks
from tasks.classification.task import TASK as CLASSIFICATION
from tasks.core.checkpoint import load_checkpoint
from tasks.core.runlog import read_jsonl
from tasks.dqn.task import TASK as DQN


def test_odenet_trains_in_classification_and_logs_its_nfe(tiny_cls) -> None:
    # RK4, 2 steps: 8 evaluations of f forward; the adjoint evaluates it 8 times again backward.
    run = tasks.train(CLASSIFICATION, [*tiny_cls, "backbone.name=odenet", "backbone.options.width=8",
                                       "backbone.options.solver=rk4", "backbone.options.steps=2",
                                       "backbone.options.adjoint=true"]).dir
    train = read_jsonl(run / "train.jsonl")
    assert train and all(r["train/nfe_forward"] == 8 and r["train/nfe_backward"] == 8 for r in train)
    metrics = tasks.evaluate(run, "cpu")
    assert 0.0 <= metrics["top1"] <= 1.0 and metrics["loss"] > 0
    assert (run / "checkpoints" / "best.pt").is_file()


def test_ode_mlp_is_a_dqn_q_network(tmp_path) -> None:
    run = tasks.train(DQN, ["backbone.name=ode_mlp", "backbone.options={width: 16, solver: midpoint, steps: 2}",
                            "model.hidden=16", "trainer.max_steps=200", "agent.learning_starts=100",
                            "trainer.eval_every=200", "eval.episodes=2", "eval.final_episodes=2",
                            "trainer.progress=false", "trainer.threads=1", f"trainer.runs_dir={tmp_path}",
                            "trainer.run_name=ode"]).dir
    saved = load_checkpoint(run / "checkpoints" / "last.pt", "dqn")
    assert saved["step"] == 200 and saved["updates"] > 0
    assert any(k.startswith("backbone.block1.func.block.fc1") for k in saved["model"])
    assert tasks.evaluate(run, "cpu")["episodes"] == 2


def test_a_bad_solver_is_a_one_line_user_error(rsuite, tiny_cls) -> None:
    code, _, err = rsuite("train", "classification", *tiny_cls, "backbone.name=odenet", "backbone.options.width=8",
                          "backbone.options.solver=rk45")
    assert code == 2 and "solver='rk45' is not valid" in err and len(err.strip().splitlines()) == 1
