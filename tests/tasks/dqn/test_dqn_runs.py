"""DQN end to end: learning on CartPole, resume, the CLI contract, Atari smoke test, predict."""

import importlib.util
import json

import pytest
import torch

import tasks
from tasks.core.checkpoint import load_checkpoint
from tasks.core.config import load_config
from tasks.core.lifecycle import RunFolder
from tasks.core.runlog import read_jsonl
from tasks.dqn.config import DQNConfig
from tasks.dqn.loop import DQNTrainer
from tasks.dqn.task import TASK

# A random CartPole policy averages about 22 steps; learning must clear that by a wide margin.
RANDOM_CARTPOLE_RETURN = 22.0


MLP = "backbone.options={width: 32, depth: 2}"


def _tiny(tmp_path, name: str, steps: int) -> list[str]:
    return ["model.hidden=32", f"trainer.max_steps={steps}",
            "trainer.progress=false", "trainer.threads=1", f"trainer.runs_dir={tmp_path / 'runs'}",
            f"trainer.run_name={name}"]


def test_cartpole_learns_well_above_random(tmp_path) -> None:
    run = tasks.train(TASK, [*_tiny(tmp_path, "learn", 4000), MLP, "agent.learning_starts=500", "agent.train_freq=1",
                      "agent.target_update=200", "agent.exploration_fraction=0.4", "trainer.eval_every=1000",
                      "eval.episodes=5", "eval.final_episodes=10", "optim.lr=0.002"]).dir
    metrics = tasks.evaluate(run, "cpu")
    print("cartpole learning test:", metrics)
    # Measured (best network, 10 episodes): 299, 159 and 169 on seeds 0, 1, 2; random is ~22.
    assert metrics["return_mean"] > 4 * RANDOM_CARTPOLE_RETURN, metrics
    assert metrics["episodes"] == 10 and metrics["return_min"] <= metrics["return_mean"] <= metrics["return_max"]
    assert {"return_std", "length_mean"} <= set(metrics)
    train = read_jsonl(run / "train.jsonl")
    assert train[-1]["epsilon"] < train[0]["epsilon"] and train[-1]["updates"] > 3000
    for name in ("config.yaml", "data_info.json", "curves.png", "eval.json", "checkpoints/best.pt",
                 "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir())


def test_resume_continues_the_run_and_keeps_the_replay(tmp_path) -> None:
    args = [*_tiny(tmp_path, "r", 600), MLP, "agent.learning_starts=100", "trainer.eval_every=300", "eval.episodes=2",
            f"data.root={tmp_path / 'replay'}", "env.num_envs=2", "agent.prioritized=true"]
    run = tasks.train(TASK, args, stop_at=300).dir
    first = load_checkpoint(run / "checkpoints" / "last.pt", "dqn")
    assert first["step"] == 300 and (tmp_path / "replay" / "r" / "replay.pt").is_file()
    tasks.train(TASK, ["trainer.progress=false"], resume=run)
    last = load_checkpoint(run / "checkpoints" / "last.pt", "dqn")
    assert last["step"] == 600 and last["updates"] > first["updates"]
    assert not torch.equal(last["target"]["advantage.2.weight"], first["target"]["advantage.2.weight"])
    assert [r["step"] for r in read_jsonl(run / "metrics.jsonl")] == [300, 600]
    # With data.root the buffer comes back; without it, learning waits until it is refilled.
    kept = DQNTrainer(load_config(DQNConfig, run / "config.yaml"), RunFolder(run, "dqn"))
    refill = DQNTrainer(load_config(DQNConfig, run / "config.yaml", ["data.root=''"]), RunFolder(run, "dqn"))
    assert kept.resume() and refill.resume()
    # 3-step returns leave <= 2 transitions per env pending at each of the two stops
    assert 600 - 2 * 2 * 2 <= len(kept.buffer) <= 600 and kept.learn_from == 100
    # the sum-tree comes back with the learned priorities (not the max priority of new transitions)
    saved = torch.load(tmp_path / "replay" / "r" / "replay.pt", weights_only=True)
    assert torch.allclose(kept.buffer.priorities(), saved["priorities"]) and saved["priorities"].std() > 0
    assert float(kept.buffer.tree.total()) == pytest.approx(float((saved["priorities"] ** 0.6).sum()))
    assert len(refill.buffer) == 0 and refill.learn_from == 600 + 100
    kept.logger.close()
    refill.logger.close()


def test_cli_train_evaluate_predict(rsuite, tmp_path) -> None:
    code, out, _ = rsuite("train", "dqn", *_tiny(tmp_path, "cli", 300), MLP, "agent.learning_starts=100",
                        "trainer.eval_every=300", "eval.episodes=2", "eval.final_episodes=3",
                        "env.num_envs=2", "env.vectorization=async", "agent.prioritized=true")
    assert code == 0 and out.strip().splitlines()[-1].endswith("runs/dqn/cli")
    run = out.strip().splitlines()[-1]
    code, out, _ = rsuite("evaluate", run, "--json")
    metrics = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and metrics["episodes"] == 3 and metrics["return_mean"] >= 8  # CartPole episodes last >= 8
    code, out, _ = rsuite("predict", run, "7", "CartPole-v0", "--out", str(tmp_path / "p.json"))
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and rows[0]["seed"] == 7 and rows[1]["env"] == "CartPole-v0" and rows[0]["length"] >= 8
    assert json.loads((tmp_path / "p.json").read_text()) == rows
    code, _, err = rsuite("predict", run, "MountainCar-v0")
    assert code == 2 and "same spaces" in err
    gif = tmp_path / "episode.gif"
    code, out, err = rsuite("predict", run, "3", "--out", str(gif))
    if importlib.util.find_spec("pygame") is None:  # CartPole draws with pygame
        assert code == 2 and "pygame" in err
    else:
        assert code == 0 and gif.read_bytes()[:3] == b"GIF"


@pytest.mark.parametrize(("argv", "needle"), [
    (["env.id=CartPol-v1"], "close matches: CartPole-v1"),
    (["env.id=Pendulum-v1"], "discrete"),
    (["backbone.name=impala_cnn"], "resmlp"),
    (["agent.n_step=0"], "agent.n_step"),
    (["env.vectorization=threads"], "sync or async"),
])
def test_bad_settings_are_one_line(rsuite, tmp_path, argv, needle) -> None:
    code, _, err = rsuite("train", "dqn", *_tiny(tmp_path, "bad", 10), *argv)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


@pytest.mark.skipif(importlib.util.find_spec("ale_py") is None, reason="ale-py is not installed")
def test_pong_smoke_with_impala(tmp_path) -> None:
    # Updates happen at env steps 100, 150 and 200 (learning_starts=100, train_freq=50).
    run = tasks.train(TASK, recipe="pong_impala", overrides=[*_tiny(tmp_path, "pong", 200),
                      "backbone.options={width: 0.25}", "model.hidden=16", "agent.buffer_size=500",
                      "agent.learning_starts=100", "agent.train_freq=50", "data.batch_size=4", "trainer.eval_every=200",
                      "eval.episodes=1", "eval.max_episode_steps=50", "trainer.device=cpu", "env.num_envs=2",
                      "env.vectorization=sync"]).dir
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt", "dqn")
    from tasks.dqn.predict import predict

    gif = tmp_path / "pong.gif"
    result = predict(run, ["1"], gif)  # the ALE renders without extra packages
    assert result[0]["length"] <= 50 and gif.read_bytes()[:3] == b"GIF"
    assert ckpt["data_info"]["obs_shape"] == [4, 84, 84] and ckpt["data_info"]["num_actions"] == 6
    assert ckpt["updates"] == 3 and 0 < read_jsonl(run / "metrics.jsonl")[-1]["val/length_mean"] <= 50
