"""Settings of the dynamics task (one dataclass per section)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks.core.config import BackboneConfig, OptimConfig, TrainerConfig


@dataclass
class DataConfig:
    """Which trajectories, and how they are cut into training windows.

    ``dataset``: ``auto`` (``generated`` without ``root``, else ``folder``), ``generated`` (the
    embedded default: ``system`` integrated offline by ``scipy.integrate.solve_ivp`` at tight
    tolerances from random initial conditions, deterministic from ``data.seed``, cached under
    ``$RSUITE_CACHE/dynamics``) or ``folder`` (your trajectories in ``root``, one file each: ``.npz``
    with ``t`` (T) and ``x`` (T x D), or ``.csv`` with a ``t`` column then the state columns;
    time stamps may be irregular). Folder split rule: the files sorted by name, every
    ``val_every``-th (the ``val_every``-th, ``2*val_every``-th, ...) is a validation trajectory.
    """

    dataset: str = "auto"  # auto | generated | folder
    root: str = ""
    system: str = "pendulum"  # generated: pendulum | lotka_volterra | lorenz | spring_chain
    masses: int = 3  # spring_chain: number of masses (state dimension 2 * masses)
    num_train: int = 64  # generated trajectories for training
    num_val: int = 16  # generated trajectories for validation
    length: int = 100  # generated: observations per trajectory
    dt: float = 0.0  # generated: time between observations; 0 = the system's default
    seed: int = 0  # generated: the data's seed (fixed across training seeds: every run sees the same trajectories)
    noise: float = 0.0  # observation noise std, as a fraction of each dimension's std (clean data untouched)
    val_every: int = 5  # folder: every n-th file by sorted name is a validation trajectory
    batch_size: int = 64  # training windows per step
    strict: bool = False  # true: an unreadable trajectory file is an error, not a skip with a warning
    limit_train: int = 0  # > 0 keeps the first n training trajectories (quick runs, tests)
    limit_val: int = 0


@dataclass
class ModelConfig:
    """How one observation interval is predicted, and the training rollout.

    ``kind``: ``auto`` (``plain`` when ``backbone.shortcut=none``, else ``residual``: the plain twin
    recipe differs from its residual base only in the shortcut, as in every task), ``residual``
    (``x + h * f(x)``, one explicit Euler step of the learned field ``f``), ``plain`` (``g(x)``,
    the next state directly) or ``ode`` (``dx/dt = f(x)`` integrated by torchdiffeq's ``solver``).
    """

    kind: str = "auto"  # auto | residual | plain | ode
    horizon: int = 10  # training: steps rolled out from each window's first state (multi-step loss)
    solver: str = "rk4"  # ode: euler | midpoint | rk4 | dopri5 (torchdiffeq)
    ode_steps: int = 1  # ode, fixed-grid solvers: solver steps per observation interval
    rtol: float = 1e-4  # ode, dopri5
    atol: float = 1e-5


@dataclass
class EvalConfig:
    """Validation rollouts: from a state every ``stride`` observations of each validation trajectory."""

    horizon: int = 50  # longest rollout: rollout_rmse (the headline) is the RMSE over its steps
    horizons: list[int] = field(default_factory=lambda: [1, 10])  # shorter ones: rollout_rmse_<h>
    stride: int = 10
    substeps: int = 1  # > 1: residual/ode models integrate each interval in this many equal sub-steps
    threshold: float = 0.3  # valid_time: steps until the normalised RMS error first exceeds this
    plots: int = 3  # validation trajectories drawn in dynamics_rollouts.png


@dataclass
class DynamicsConfig:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(name="resmlp"))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adam", lr=1e-3, weight_decay=0.0,
                                                                   schedule="cosine"))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
