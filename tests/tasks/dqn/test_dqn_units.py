"""DQN pieces against hand-computed values: n-step returns, replay buffer, targets, epsilon."""

import numpy as np
import pytest
import torch
from torch import nn

from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.dqn.agent import epsilon_at, td_targets
from tasks.dqn.config import DQNConfig
from tasks.dqn.data import check_env_id
from tasks.dqn.model import build_model
from tasks.dqn.replay import NStepAccumulator, ReplayBuffer


def test_n_step_returns_by_hand() -> None:
    acc = NStepAccumulator(num_envs=1, n=3, gamma=0.5)
    obs = [np.array([float(i)]) for i in range(5)]
    out = []
    for t, r in enumerate([1.0, 2.0, 3.0, 4.0]):
        out += acc.add(0, obs[t], t, r, obs[t + 1], terminated=(t == 3), truncated=False)
    # (start obs, action, reward_n, next obs, discount)
    expected = [(0, 0, 1 + 0.5 * 2 + 0.25 * 3, 3, 0.125),  # full 3 steps, bootstraps from s3
                (1, 1, 2 + 0.5 * 3 + 0.25 * 4, 4, 0.0),  # reaches the terminal step: no bootstrap
                (2, 2, 3 + 0.5 * 4, 4, 0.0),
                (3, 3, 4.0, 4, 0.0)]
    assert len(out) == len(expected)
    for (o, a, r, nxt, d), (eo, ea, er, enxt, ed) in zip(out, expected):
        assert (o[0], a, nxt[0]) == (eo, ea, enxt)
        assert r == pytest.approx(er) and d == pytest.approx(ed)


def test_truncation_still_bootstraps() -> None:
    acc = NStepAccumulator(num_envs=2, n=2, gamma=0.9)
    assert acc.add(1, np.zeros(1), 0, 1.0, np.ones(1), False, False) == []  # env 1: one step pending
    out = acc.add(1, np.ones(1), 1, 2.0, np.full(1, 2.0), False, True)  # time limit hit
    assert [round(t[2], 6) for t in out] == [1 + 0.9 * 2, 2.0]
    assert [round(t[4], 6) for t in out] == [0.81, 0.9]  # gamma^m, not 0: truncation is not termination
    assert not acc.queues[0] and not acc.queues[1]  # the episode end flushed env 1


def test_replay_ring_and_uniform_sampling() -> None:
    buf = ReplayBuffer(3, (2,), "float32")
    for i in range(5):  # overwrites the two oldest
        buf.add(np.full(2, i, np.float32), i % 2, float(i), np.full(2, i + 1, np.float32), 0.99)
    assert len(buf) == 3 and sorted(buf.rewards.tolist()) == [2.0, 3.0, 4.0]
    batch = buf.sample(64, np.random.default_rng(0), torch.device("cpu"))
    assert set(batch["rewards"].tolist()) == {2.0, 3.0, 4.0}
    assert torch.equal(batch["next_obs"][:, 0], batch["obs"][:, 0] + 1)
    assert torch.equal(batch["weights"], torch.ones(64))


def test_stacked_frames_are_stored_once_as_uint8() -> None:
    buf = ReplayBuffer(4, (4, 3, 3), np.uint8)
    frames = np.arange(5, dtype=np.uint8)[:, None, None] * np.ones((1, 3, 3), np.uint8)
    buf.add(frames[:4], 1, 1.0, frames[1:], 0.9)
    assert buf.obs.dtype == np.uint8 and buf.next_obs.shape == (4, 1, 3, 3)  # only the new frame
    batch = buf.sample(2, np.random.default_rng(0), torch.device("cpu"))
    assert batch["next_obs"].dtype == torch.uint8
    assert batch["next_obs"][0, :, 0, 0].tolist() == [1, 2, 3, 4]


def test_prioritized_sampling_and_importance_weights() -> None:
    buf = ReplayBuffer(2, (1,), "float32", prioritized=True, alpha=1.0, eps=0.0)
    buf.add(np.zeros(1), 0, 0.0, np.zeros(1), 0.0)
    buf.add(np.ones(1), 1, 1.0, np.ones(1), 0.0)
    buf.update_priorities(torch.tensor([0, 1]), torch.tensor([1.0, -3.0]))  # P = 1/4, 3/4
    batch = buf.sample(4000, np.random.default_rng(0), torch.device("cpu"), beta=1.0)
    share = float((batch["indices"] == 1).float().mean())
    assert share == pytest.approx(0.75, abs=0.03)
    # w = (N P)^-1 / max w: (2/4)^-1 = 2 is the largest, (6/4)^-1 = 2/3 -> 1/3 after normalising
    w = {int(i): float(v) for i, v in zip(batch["indices"], batch["weights"])}
    assert w[0] == pytest.approx(1.0) and w[1] == pytest.approx(1 / 3)


class _Fixed(nn.Module):
    """Returns the same Q table for every observation (for hand-computed targets)."""

    def __init__(self, table: list[list[float]]) -> None:
        super().__init__()
        self.table = torch.tensor(table)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.table[obs.long().squeeze(1)]


def test_double_dqn_target_by_hand() -> None:
    online = _Fixed([[1.0, 5.0, 2.0], [3.0, 0.0, 1.0]])  # picks actions 1 and 0
    target = _Fixed([[10.0, 4.0, 20.0], [7.0, 8.0, 9.0]])
    next_obs = torch.tensor([[0.0], [1.0]])
    rewards, discounts = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.0])
    double = td_targets(online, target, rewards, next_obs, discounts, double=True)
    assert double.tolist() == [1 + 0.5 * 4.0, 2.0]  # target's value of the online net's choice
    vanilla = td_targets(online, target, rewards, next_obs, discounts, double=False)
    assert vanilla.tolist() == [1 + 0.5 * 20.0, 2.0]  # max of the target net


def test_epsilon_schedule() -> None:
    assert epsilon_at(0, 1000, 1.0, 0.1, 0.5) == 1.0
    assert epsilon_at(250, 1000, 1.0, 0.1, 0.5) == pytest.approx(0.55)
    assert epsilon_at(900, 1000, 1.0, 0.1, 0.5) == pytest.approx(0.1)


def test_q_networks_residual_plain_dueling() -> None:
    cfg = load_config(DQNConfig, None, ["backbone.options={width: 16, depth: 3}", "model.hidden=8"])
    q = build_model(cfg, {"obs_shape": [4], "num_actions": 3, "pixels": False})
    assert q(torch.zeros(5, 4)).shape == (5, 3) and q.value is not None
    plain = build_model(load_config(DQNConfig, None, ["backbone.shortcut=none", "model.dueling=false"]),
                        {"obs_shape": [4], "num_actions": 2, "pixels": False})
    assert plain.value is None and not plain.backbone.block1.opts.residual
    pix = load_config(DQNConfig, None, ["backbone.name=impala_cnn", "model.hidden=16"])
    net = build_model(pix, {"obs_shape": [4, 84, 84], "num_actions": 6, "pixels": True})
    assert net(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape == (2, 6)
    with pytest.raises(UserError, match="impala_cnn"):
        build_model(cfg, {"obs_shape": [4, 84, 84], "num_actions": 6, "pixels": True})


def test_bad_env_id_lists_close_matches() -> None:
    with pytest.raises(UserError, match=r"unknown env.id 'CartPole-v9'; close matches: .*CartPole-v1"):
        check_env_id("CartPole-v9")


def test_polyak_and_hard_target_updates() -> None:
    from tasks.dqn.agent import Learner

    cfg = load_config(DQNConfig, None, ["backbone.options={width: 4, depth: 1}", "model.hidden=0"])
    learner = Learner(build_model(cfg, {"obs_shape": [2], "num_actions": 2, "pixels": False}), cfg,
                      torch.device("cpu"))
    with torch.no_grad():
        for p in learner.online.parameters():
            p.fill_(1.0)
        for p in learner.target.parameters():
            p.fill_(3.0)
    learner.soft_update(0.25)  # 0.25 * 1 + 0.75 * 3
    assert all(torch.allclose(p, torch.full_like(p, 2.5)) for p in learner.target.parameters())
    learner.hard_update()
    assert all(torch.equal(p, torch.ones_like(p)) for p in learner.target.parameters())
