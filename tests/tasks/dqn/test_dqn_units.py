"""DQN pieces against hand-computed values: n-step returns, replay buffer, targets, epsilon."""

import numpy as np
import pytest
import torch

from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.dqn.agent import epsilon_at, td_targets
from tasks.dqn.config import DQNConfig
from tasks.dqn.data import check_env_id
from tasks.dqn.evaluate import EVAL_PARALLEL, eval_env, eval_envs, evaluate_policy
from tasks.dqn.model import build_model
from tasks.dqn.replay import NStepAccumulator, ReplayBuffer
from tasks.dqn.sumtree import SumTree


def test_n_step_returns_by_hand() -> None:
    acc = NStepAccumulator(num_envs=1, n=3, gamma=0.5, obs_shape=(1,))
    obs = [np.array([[float(i)]]) for i in range(5)]
    out = []
    for t, r in enumerate([1.0, 2.0, 3.0, 4.0]):
        batch = acc.add(obs[t], np.array([t]), np.array([r]), obs[t + 1], np.array([t == 3]), np.array([False]))
        out += [] if batch is None else list(zip(*batch))
    # (start obs, action, reward_n, next obs, discount)
    expected = [(0, 0, 1 + 0.5 * 2 + 0.25 * 3, 3, 0.125),  # full 3 steps, bootstraps from s3
                (1, 1, 2 + 0.5 * 3 + 0.25 * 4, 4, 0.0),  # reaches the terminal step: no bootstrap
                (2, 2, 3 + 0.5 * 4, 4, 0.0),
                (3, 3, 4.0, 4, 0.0)]
    assert len(out) == len(expected)
    for (o, a, r, nxt, d), (eo, ea, er, enxt, ed) in zip(out, expected):
        assert (o[0], a, nxt[0]) == (eo, ea, enxt)
        assert r == pytest.approx(er) and d == pytest.approx(ed)


def test_truncation_still_bootstraps_and_envs_stay_apart() -> None:
    acc = NStepAccumulator(num_envs=2, n=2, gamma=0.9, obs_shape=(1,))
    zeros, no = np.zeros((2, 1)), np.zeros(2, bool)
    # env 0 terminates at once; env 1 has one step pending
    out = acc.add(zeros, np.array([5, 6]), np.array([7.0, 1.0]), zeros + 1, np.array([True, False]), no)
    assert out[1].tolist() == [5] and out[2].tolist() == [7.0] and out[4].tolist() == [0.0]
    out = acc.add(zeros + 1, np.array([0, 1]), np.array([0.0, 2.0]), zeros + 2, no, np.array([False, True]))
    # env 1 hit its time limit: both pending starts flush and bootstrap with gamma^m, not 0
    assert out[1].tolist() == [6, 1] and np.allclose(out[2], [1 + 0.9 * 2, 2.0])
    assert np.allclose(out[4], [0.81, 0.9]) and out[3][:, 0].tolist() == [2.0, 2.0]
    assert acc.count.tolist() == [1, 0]  # env 0's new episode has one step pending; env 1 flushed


def test_n_step_vectorised_matches_one_env_at_a_time() -> None:
    """Eight envs with random rewards and episode ends give the same transitions as eight single-env streams."""
    rng = np.random.default_rng(0)
    envs, steps, n, gamma = 8, 200, 3, 0.9
    rewards = rng.normal(size=(steps, envs))
    term, trunc = rng.random((steps, envs)) < 0.1, rng.random((steps, envs)) < 0.05
    obs = rng.normal(size=(steps + 1, envs, 2))
    together = NStepAccumulator(envs, n, gamma, (2,))
    joint = []
    for t in range(steps):
        out = together.add(obs[t], np.full(envs, t), rewards[t], obs[t + 1], term[t], trunc[t])
        if out is not None:
            joint += [(round(float(o[0]), 9), int(a), round(float(r), 9), round(float(d), 9))
                      for o, a, r, d in zip(out[0], out[1], out[2], out[4])]
    single = []
    for e in range(envs):
        acc = NStepAccumulator(1, n, gamma, (2,))
        for t in range(steps):
            out = acc.add(obs[t, e:e + 1], np.array([t]), rewards[t, e:e + 1], obs[t + 1, e:e + 1], term[t, e:e + 1],
                          trunc[t, e:e + 1])
            if out is not None:
                single += [(round(float(o[0]), 9), int(a), round(float(r), 9), round(float(d), 9))
                           for o, a, r, d in zip(out[0], out[1], out[2], out[4])]
    assert sorted(joint) == sorted(single) and len(joint) > steps * envs * 0.9


def _add(buf: ReplayBuffer, obs, action: int, reward: float, next_obs, discount: float) -> None:
    buf.add(np.asarray(obs)[None], np.array([action]), np.array([reward], np.float32), np.asarray(next_obs)[None],
            np.array([discount], np.float32))


def test_replay_ring_and_uniform_sampling() -> None:
    buf = ReplayBuffer(3, (2,), "float32")
    for i in range(5):  # overwrites the two oldest
        _add(buf, np.full(2, i, np.float32), i % 2, float(i), np.full(2, i + 1, np.float32), 0.99)
    assert len(buf) == 3 and sorted(buf.rewards.tolist()) == [2.0, 3.0, 4.0]
    batch = buf.sample(64)
    assert set(batch["rewards"].tolist()) == {2.0, 3.0, 4.0}
    assert torch.equal(batch["next_obs"][:, 0], batch["obs"][:, 0] + 1)
    assert torch.equal(batch["weights"], torch.ones(64))
    # a batch that wraps around the ring's end lands in order: slots 2, 0, 1 get 10, 11, 12
    buf.add(np.zeros((3, 2), np.float32), np.zeros(3), np.array([10.0, 11.0, 12.0]), np.zeros((3, 2), np.float32),
            np.zeros(3))
    assert buf.rewards.tolist() == [11.0, 12.0, 10.0] and buf.pos == 2


def test_stacked_frames_are_stored_once_as_uint8() -> None:
    buf = ReplayBuffer(4, (4, 3, 3), np.uint8)
    frames = np.arange(5, dtype=np.uint8)[:, None, None] * np.ones((1, 3, 3), np.uint8)
    _add(buf, frames[:4], 1, 1.0, frames[1:], 0.9)
    assert buf.obs.dtype == torch.uint8 and buf.next_obs.shape == (4, 1, 3, 3)  # only the new frame
    batch = buf.sample(2)
    assert batch["next_obs"].dtype == torch.uint8
    assert batch["next_obs"][0, :, 0, 0].tolist() == [1, 2, 3, 4]


def test_prioritized_sampling_and_importance_weights() -> None:
    buf = ReplayBuffer(2, (1,), "float32", prioritized=True, alpha=1.0, eps=0.0)
    _add(buf, np.zeros(1), 0, 0.0, np.zeros(1), 0.0)
    _add(buf, np.ones(1), 1, 1.0, np.ones(1), 0.0)
    buf.update_priorities(torch.tensor([0, 1]), torch.tensor([1.0, -3.0]))  # P = 1/4, 3/4
    batch = buf.sample(4000, beta=1.0)
    share = float((batch["indices"] == 1).float().mean())
    assert share == pytest.approx(0.75, abs=0.03)
    # w = (N P)^-1 / max w: (2/4)^-1 = 2 is the largest, (6/4)^-1 = 2/3 -> 1/3 after normalising
    w = {int(i): float(v) for i, v in zip(batch["indices"], batch["weights"])}
    assert w[0] == pytest.approx(1.0) and w[1] == pytest.approx(1 / 3)
    assert float(buf.max_priority) == 3.0


def test_sum_tree_sampling_frequencies_match_priorities() -> None:
    """Chi-square test of 200k stratified draws over 1000 leaves against p / sum(p) (fixed seed)."""
    tree = SumTree(1000, max_fanout=8)  # 4 levels of 1296 leaves: 296 spare leaves must never be drawn
    gen = np.random.default_rng(0)
    p = torch.from_numpy(gen.random(1000)) ** 3  # skewed: ratios up to 1e6+
    p[::7] = 0.0  # empty leaves are never drawn
    tree.update(torch.arange(1000), p)
    assert float(tree.total()) == pytest.approx(float(p.sum()), rel=1e-12)
    draws = torch.cat([tree.sample(1000, gen) for _ in range(200)])
    assert int(draws.min()) >= 0 and int(draws.max()) < 1000
    counts = torch.bincount(draws, minlength=1000).double()
    assert counts[::7].sum() == 0
    expected = p / p.sum() * len(draws)
    keep = expected > 5  # the chi-square approximation needs >= 5 expected per cell
    chi2 = float(((counts[keep] - expected[keep]) ** 2 / expected[keep]).sum())
    dof = int(keep.sum()) - 1
    # mean dof, sd sqrt(2 dof); stratified draws are *less* variable than independent ones
    assert chi2 < dof + 4 * (2 * dof) ** 0.5, (chi2, dof)
    assert float(counts[~keep].sum()) <= float(expected[~keep].sum()) * 1.5 + 20


@pytest.mark.parametrize("fanout", [2, 3, 64])
def test_sum_tree_update_and_find_by_hand(fanout: int) -> None:
    tree = SumTree(5, max_fanout=fanout)  # binary: 3 levels of 8 leaves; 3-ary: 2 of 9; 64-ary: 1 of 5
    assert tree.fanout ** tree.depth >= 5 and tree.fanout <= fanout
    tree.update(torch.tensor([0, 1, 2, 3, 4]), torch.tensor([1.0, 2.0, 0.0, 3.0, 4.0]))
    assert float(tree.total()) == 10.0
    # prefix sums 0 | 1 | 3 | 3 | 6 | 10: mass m falls into the leaf whose segment holds it
    mass = torch.tensor([0.0, 0.99, 1.0, 2.5, 3.0, 5.99, 6.0, 9.99, 10.0, 11.0], dtype=torch.float64)
    assert tree.find(mass).tolist() == [0, 0, 1, 1, 3, 3, 4, 4, 4, 4]  # never leaf 2 (empty) or a spare one
    tree.update(torch.tensor([4, 4, 0]), torch.tensor([0.5, 0.5, 0.0]))  # repeated index, a leaf emptied
    assert float(tree.total()) == 5.5 and tree.values(torch.arange(5)).tolist() == [0.0, 2.0, 0.0, 3.0, 0.5]
    assert tree.find(torch.tensor([0.0, 1.99, 2.0, 5.4, 7.0])).tolist() == [1, 1, 3, 4, 4]


def test_replay_priorities_survive_save_and_resume() -> None:
    buf = ReplayBuffer(8, (1,), "float32", prioritized=True, alpha=0.5, eps=0.0)
    buf.add(np.arange(6, dtype=np.float32)[:, None], np.arange(6), np.zeros(6), np.zeros((6, 1)), np.zeros(6))
    buf.update_priorities(torch.tensor([0, 2, 5]), torch.tensor([4.0, 9.0, 0.25]))
    state = buf.state_dict()
    assert state["priorities"].tolist() == pytest.approx([4.0, 1.0, 9.0, 1.0, 1.0, 0.25])
    back = ReplayBuffer(8, (1,), "float32", prioritized=True, alpha=0.5, eps=0.0, seed=3)
    back.load_state_dict(state)
    assert len(back) == 6 and back.pos == 6 and float(back.max_priority) == 9.0
    assert all(np.allclose(a, b, rtol=1e-12, atol=0) for a, b in zip(back.tree.levels, buf.tree.levels))
    assert torch.equal(back.obs[:6], buf.obs[:6])
    buf.seed(3)
    assert torch.equal(back.sample(16)["indices"], buf.sample(16)["indices"])  # same tree, same stream


def test_double_dqn_target_by_hand() -> None:
    online = torch.tensor([[1.0, 5.0, 2.0], [3.0, 0.0, 1.0]])  # picks actions 1 and 0
    target = torch.tensor([[10.0, 4.0, 20.0], [7.0, 8.0, 9.0]])
    rewards, discounts = torch.tensor([1.0, 2.0]), torch.tensor([0.5, 0.0])
    double = td_targets(target, online, rewards, discounts)
    assert double.tolist() == [1 + 0.5 * 4.0, 2.0]  # target's value of the online net's choice
    vanilla = td_targets(target, None, rewards, discounts)
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
    with pytest.raises(UserError, match=r"resmlp.* vector backbone; .*image"):
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


def test_one_optimizer_group_and_two_group_checkpoints_still_load() -> None:
    from tasks.core.optim import build_optimizer
    from tasks.dqn.agent import Learner

    cfg = load_config(DQNConfig, None, ["backbone.options={width: 4, depth: 1}", "model.hidden=0"])
    info = {"obs_shape": [2], "num_actions": 2, "pixels": False}
    learner = Learner(build_model(cfg, info), cfg, torch.device("cpu"))
    assert len(learner.optimizer.param_groups) == 1  # weight decay 0: decay/no-decay groups are one
    decayed = load_config(DQNConfig, None, ["backbone.options={width: 4, depth: 1}", "optim.weight_decay=0.1"])
    assert len(Learner(build_model(decayed, info), decayed, torch.device("cpu")).optimizer.param_groups) == 2
    # a checkpoint written with two groups of tensors (before the merge and the flattening) resumes
    # with its moments in place: concatenated in the parameters' order
    old = build_optimizer(learner.online, cfg.optim)
    learner.online(torch.ones(3, 2)).sum().backward()
    old.step()
    learner.load_state_dict({**learner.state_dict(), "optimizer": old.state_dict()})
    expected = torch.cat([old.state[p]["exp_avg"].reshape(-1) for g in old.param_groups for p in g["params"]])
    assert torch.equal(learner.optimizer.state[learner.flat[0]]["exp_avg"], expected)
    # and a flat checkpoint resumes as it was saved
    learner.load_state_dict(learner.state_dict())
    assert torch.equal(learner.optimizer.state[learner.flat[0]]["exp_avg"], expected)


def test_flat_parameters_and_traces_train_exactly_as_the_modules() -> None:
    """One flat Adam parameter + TorchScript traces give the same updates as per-tensor Adam on the
    eager modules (the maths is elementwise; the traces run the same kernels)."""
    from tasks.dqn.agent import Learner, planned_updates

    cfg = load_config(DQNConfig, None, ["backbone.options={width: 8, depth: 2}", "model.hidden=8", "agent.double=true"])
    info = {"obs_shape": [3], "num_actions": 2, "pixels": False}
    torch.manual_seed(0)
    learner = Learner(build_model(cfg, info), cfg, torch.device("cpu"))
    assert learner.net is not learner.online and not learner.joint  # the CPU vector network is traced
    torch.manual_seed(0)
    reference = build_model(cfg, info)
    target = build_model(cfg, info)
    target.load_state_dict(reference.state_dict())
    optimizer = torch.optim.Adam(reference.parameters(), lr=cfg.optim.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learner.scheduler.lr_lambdas[0](step))
    assert planned_updates(cfg) > 5
    generator = torch.Generator().manual_seed(1)
    for _ in range(5):
        batch = {"obs": torch.randn(16, 3, generator=generator), "next_obs": torch.randn(16, 3, generator=generator),
                 "actions": torch.randint(0, 2, (16,), generator=generator),
                 "rewards": torch.randn(16, generator=generator), "discounts": torch.full((16,), 0.9),
                 "weights": torch.ones(16)}
        out = learner.update(batch)
        with torch.no_grad():
            best = reference(batch["next_obs"]).argmax(1, keepdim=True)
            y = batch["rewards"] + batch["discounts"] * target(batch["next_obs"]).gather(1, best).squeeze(1)
        q = reference(batch["obs"]).gather(1, batch["actions"].unsqueeze(1)).squeeze(1)
        loss = torch.nn.functional.huber_loss(q, y, delta=cfg.agent.huber_delta)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(reference.parameters(), cfg.optim.grad_clip)
        optimizer.step()
        schedule.step()
        assert torch.allclose(out["loss"], loss.detach(), atol=1e-6)
    for mine, theirs in zip(learner.online.parameters(), reference.parameters()):
        assert torch.allclose(mine, theirs, atol=1e-5)
    # the modules' parameters are views of the flat one, so the trace and every optimizer step agree
    flat = learner.flat[0].untyped_storage().data_ptr()
    assert all(p.untyped_storage().data_ptr() == flat for p in learner.online.parameters())
    x = torch.randn(4, 3)
    with torch.no_grad():
        assert torch.equal(learner.net(x), learner.online(x))
    learner.hard_update()
    with torch.no_grad():
        assert torch.equal(learner.target_net(x), learner.online(x))


class _LeanPolicy(torch.nn.Module):
    """Pushes the cart toward where the pole leans, badly enough that episode lengths vary."""

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        lean = obs[:, 2]  # the angle only: episodes of 25-56 steps on seeds 100-106
        return torch.stack([-lean, lean], 1)


def test_side_by_side_evaluation_scores_each_seeded_episode_as_one_env_at_a_time() -> None:
    cfg = load_config(DQNConfig, None, [])
    by_hand = []
    env = eval_env(cfg)
    for i in range(7):  # the reference: one episode after another, seeded 100 + i
        obs, _ = env.reset(seed=100 + i)
        total, done = 0.0, False
        while not done:
            action = int(_LeanPolicy()(torch.as_tensor(obs).unsqueeze(0)).argmax(1))
            obs, reward, terminated, truncated, _ = env.step(action)
            total, done = total + reward, terminated or truncated
        by_hand.append(total)
    assert len(set(by_hand)) > 2  # the episodes differ, so a mixed-up seed or episode would show
    expected = {"return_mean": np.mean(by_hand), "return_min": min(by_hand), "return_max": max(by_hand)}
    for parallel in (1, 3, 7):
        metrics = evaluate_policy(_LeanPolicy(), eval_envs(cfg, parallel), 7, 0.0, 100, torch.device("cpu"))
        assert {k: metrics[k] for k in expected} == pytest.approx(expected), parallel
        assert metrics["episodes"] == 7 and metrics["length_mean"] == pytest.approx(np.mean(by_hand))
    assert len(eval_envs(cfg, 1000)) == EVAL_PARALLEL
