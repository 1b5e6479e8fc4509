"""DQN after training: the Q-network exported in every format, greedy actions and episodes from the Predictor."""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import tasks

TINY = ["backbone.options={width: 32, depth: 2}", "model.hidden=32", "trainer.max_steps=300",
        "trainer.eval_every=300", "agent.learning_starts=100", "eval.episodes=1", "trainer.progress=false",
        "trainer.threads=1", "trainer.run_name=q"]


def test_q_network_exports_and_the_predictor_acts_greedily(tmp_path, rsuite) -> None:
    run = tasks.train("dqn", [*TINY, f"trainer.runs_dir={tmp_path}"]).dir
    for fmt, extra in (("onnx", ["--dynamic-batch"]), ("torchscript", []), ("exported", [])):
        code, out, err = rsuite("export", str(run), "--format", fmt, *extra)
        assert code == 0, err
        path = Path(out.strip().splitlines()[-1])
        record = json.loads(path.with_name(path.name + ".json").read_text())
        assert record["input_names"] == ["obs"] and record["max_abs_diff"] <= record["tolerance"]
    p = tasks.Predictor.from_run(run)
    env = gym.make("CartPole-v1")
    observations = [env.reset(seed=s)[0] for s in range(4)]
    with torch.no_grad():
        q = tasks.load_run(run).model(torch.from_numpy(np.stack(observations)))
    results = p(np.stack(observations))  # a batch of observations: one result each
    assert [r["action"] for r in results] == q.argmax(1).tolist()
    assert p(observations[0]) == results[0] and p(torch.from_numpy(observations[1])) == results[1]
    code, out, err = rsuite("predict", str(run), "7", "3")
    assert code == 0, err
    assert p.play(["7", "3"]) == [json.loads(line) for line in out.strip().splitlines()]
    deployed = tasks.Predictor.from_export(run / "export" / "model.onnx")
    assert [r["action"] for r in deployed(observations)] == [r["action"] for r in p(observations)]
    assert deployed.play(["7"]) == p.play(["7"])
