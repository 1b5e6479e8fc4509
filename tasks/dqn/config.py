"""Settings of the DQN task (one dataclass per section, a comment per field).

``trainer.max_steps`` counts *environment* steps (summed over the vectorised envs), and so do
``trainer.eval_every`` and ``trainer.log_every``; ``agent.*`` step counts are environment steps too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks.core.config import BackboneConfig, OptimConfig, TrainerConfig


@dataclass
class EnvConfig:
    """Which gymnasium environment, how many copies, and the Atari preprocessing."""

    id: str = "CartPole-v1"  # any registered gymnasium id; ALE/* ids need ale-py
    num_envs: int = 1  # environments stepped together (gymnasium.vector)
    vectorization: str = "sync"  # sync (one process) | async (one subprocess per env)
    env_threads: int = 1  # OpenMP/BLAS threads per async env subprocess (avoids oversubscription)
    max_episode_steps: int = 0  # > 0 overrides the id's time limit
    # Atari (ALE/*) only: gymnasium's AtariPreprocessing, FrameStackObservation and ClipReward.
    frame_skip: int = 4
    screen_size: int = 84
    noop_max: int = 30
    frame_stack: int = 4
    clip_rewards: bool = True  # learner sees sign(reward); evaluation reports the game score
    episodic_life: bool = True  # a lost life ends the learner's return (no bootstrap); the game goes on
    sticky_actions: float = 0.25  # repeat_action_probability of ALE v5


@dataclass
class DataConfig:
    """Replay sampling. ``root``: optional folder where the replay buffer is saved with every
    checkpoint and reloaded on resume; empty = not saved, a resumed run refills it first."""

    root: str = ""
    batch_size: int = 64  # transitions per gradient step
    # where the replay lives and is sampled: auto = the learner's device (a GPU learner then never
    # waits on host copies); cpu = host memory, when a large buffer does not fit on the GPU
    replay_device: str = "auto"


@dataclass
class ModelConfig:
    """The Q-head on the backbone's last stage."""

    dueling: bool = True  # value + advantage streams (Wang et al. 2016)
    hidden: int = 256  # width of the head's hidden layer (each stream when dueling); 0 = linear head


@dataclass
class AgentConfig:
    """The DQN algorithm: targets, replay, exploration."""

    gamma: float = 0.99
    n_step: int = 3  # n-step returns; 1 = classic one-step DQN
    double: bool = True  # Double DQN: online net picks the next action, target net values it
    huber_delta: float = 1.0  # Huber (smooth L1) loss threshold
    buffer_size: int = 50_000  # transitions kept
    learning_starts: int = 1_000  # env steps of experience before the first update
    train_freq: int = 1  # env steps between update rounds
    gradient_steps: int = 1  # gradient steps per update round
    target_update: int = 500  # env steps between hard target copies (used when tau == 1)
    tau: float = 1.0  # 1 = hard copy every target_update steps; < 1 = Polyak averaging every update
    eps_start: float = 1.0
    eps_end: float = 0.02
    exploration_fraction: float = 0.2  # share of max_steps over which epsilon falls linearly
    prioritized: bool = False  # proportional prioritised replay (Schaul et al. 2016)
    priority_alpha: float = 0.6
    priority_beta: float = 0.4  # importance-weight exponent, annealed to 1 over the run
    priority_eps: float = 1e-6


@dataclass
class EvalConfig:
    """Greedy-policy evaluation during training and by ``rsuite evaluate``."""

    episodes: int = 10  # episodes per evaluation during training
    final_episodes: int = 20  # episodes of ``rsuite evaluate``
    epsilon: float = 0.0  # exploration while evaluating (0.001 is customary on Atari)
    max_episode_steps: int = 0  # > 0 caps evaluation episodes (long Atari games)


@dataclass
class DQNConfig:
    seed: int = 0
    env: EnvConfig = field(default_factory=EnvConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    agent: AgentConfig = field(default_factory=AgentConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(name="resmlp"))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adam", lr=1e-3, weight_decay=0.0,
                                                                  schedule="constant", grad_clip=10.0))
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(
        max_steps=20_000, eval_every=2_000, log_every=500))
