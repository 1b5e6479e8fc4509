"""The embedded dynamical systems: vector fields, initial conditions, invariants.

Each system integrates with ``scipy.integrate.solve_ivp`` (DOP853, ``rtol = atol = 1e-10``), so
the generated trajectories are exact to far below any model's error. Two are conservative and
have an invariant the evaluation tracks (``energy_drift``): the Lotka-Volterra first integral
and the spring chain's energy. The damped pendulum loses energy by design and Lorenz-63 has no
invariant, so neither reports one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tasks.core.errors import UserError

TOLERANCE = 1e-10

# Lotka-Volterra x' = a x - b x y, y' = d x y - g y (the textbook example: equilibrium at (1, 0.5))
LV_A, LV_B, LV_D, LV_G = 2 / 3, 4 / 3, 1.0, 1.0
# Lorenz-63 with the classic chaotic parameters
SIGMA, RHO, BETA = 10.0, 28.0, 8 / 3
PENDULUM_DAMPING = 0.1  # theta'' = -sin(theta) - damping * theta'  (g / L = 1)


@dataclass(frozen=True)
class System:
    """One embedded system: its field ``rhs(t, x)``, a sampler of initial states and its default step."""

    name: str
    dim: int
    rhs: Callable[[float, np.ndarray], np.ndarray]
    initial: Callable[[np.random.Generator], np.ndarray]
    dt: float  # default time between observations
    burn_in: float = 0.0  # time integrated before the first observation (Lorenz: onto the attractor)
    invariant: Callable[[np.ndarray], np.ndarray] | None = None  # (..., D) -> (...), conserved along solutions
    names: tuple[str, ...] = ()

    def trajectory(self, rng: np.random.Generator, length: int, dt: float) -> tuple[np.ndarray, np.ndarray]:
        """``length`` observations ``dt`` apart from a random initial state: ``(t (T,), x (T, D))``."""
        from scipy.integrate import solve_ivp

        x0 = self.initial(rng)
        if self.burn_in > 0:
            x0 = solve_ivp(self.rhs, (0.0, self.burn_in), x0, method="DOP853", rtol=TOLERANCE, atol=TOLERANCE).y[:, -1]
        t = np.arange(length) * dt
        sol = solve_ivp(self.rhs, (0.0, t[-1]), x0, t_eval=t, method="DOP853", rtol=TOLERANCE, atol=TOLERANCE)
        if not sol.success:  # the fields here are smooth; a failure is a bug, not a user error
            raise RuntimeError(f"solve_ivp failed on {self.name}: {sol.message}")
        return t, sol.y.T.copy()


def _pendulum(_t: float, x: np.ndarray) -> np.ndarray:
    theta, omega = x
    return np.array([omega, -np.sin(theta) - PENDULUM_DAMPING * omega])


def _lotka_volterra(_t: float, x: np.ndarray) -> np.ndarray:
    prey, predator = x
    return np.array([LV_A * prey - LV_B * prey * predator, LV_D * prey * predator - LV_G * predator])


def _lv_invariant(x: np.ndarray) -> np.ndarray:
    """``d x - g ln x + b y - a ln y`` minus its minimum (at the equilibrium): >= 0, 0 at rest.

    Predictions may leave the positive quadrant; they are clipped to it so the logarithm stays
    finite (the invariant then grows large, which is the drift we want to see).
    """
    prey, predator = np.clip(x[..., 0], 1e-6, None), np.clip(x[..., 1], 1e-6, None)
    value = LV_D * prey - LV_G * np.log(prey) + LV_B * predator - LV_A * np.log(predator)
    xs, ys = LV_G / LV_D, LV_A / LV_B
    return value - (LV_D * xs - LV_G * np.log(xs) + LV_B * ys - LV_A * np.log(ys))


def _lorenz(_t: float, x: np.ndarray) -> np.ndarray:
    a, b, c = x
    return np.array([SIGMA * (b - a), a * (RHO - c) - b, a * b - BETA * c])


def _chain_rhs(masses: int) -> Callable[[float, np.ndarray], np.ndarray]:
    """``masses`` unit masses joined by unit springs, both ends fixed to walls: ``q'' = -K q``."""
    stiffness = 2 * np.eye(masses) - np.eye(masses, k=1) - np.eye(masses, k=-1)

    def rhs(_t: float, x: np.ndarray) -> np.ndarray:
        q, v = x[:masses], x[masses:]
        return np.concatenate([v, -stiffness @ q])

    return rhs


def _chain_energy(masses: int) -> Callable[[np.ndarray], np.ndarray]:
    def energy(x: np.ndarray) -> np.ndarray:
        q, v = x[..., :masses], x[..., masses:]
        walls = np.zeros((*q.shape[:-1], 1))
        stretch = np.diff(np.concatenate([walls, q, walls], axis=-1), axis=-1)
        return 0.5 * (v**2).sum(-1) + 0.5 * (stretch**2).sum(-1)

    return energy


SYSTEMS = ("pendulum", "lotka_volterra", "lorenz", "spring_chain")


def get_system(name: str, masses: int = 3) -> System:
    """The system called ``name`` (``masses`` sizes the spring chain); a one-line error otherwise."""
    if name == "pendulum":
        return System(name, 2, _pendulum, lambda r: np.array([r.uniform(-2.5, 2.5), r.uniform(-1.0, 1.0)]), 0.1,
                      names=("theta", "omega"))
    if name == "lotka_volterra":
        return System(name, 2, _lotka_volterra, lambda r: r.uniform(0.3, 1.8, 2), 0.1, invariant=_lv_invariant,
                      names=("prey", "predator"))
    if name == "lorenz":
        return System(name, 3, _lorenz, lambda r: r.normal(0.0, 1.0, 3) + np.array([0.0, 0.0, 25.0]), 0.02,
                      burn_in=5.0, names=("x", "y", "z"))
    if name == "spring_chain":
        if masses < 1:
            raise UserError(f"data.masses={masses} must be >= 1 (the spring chain's state has 2 * masses numbers)")
        return System(name, 2 * masses, _chain_rhs(masses),
                      lambda r: np.concatenate([r.normal(0.0, 0.5, masses), r.normal(0.0, 0.5, masses)]), 0.1,
                      invariant=_chain_energy(masses),
                      names=tuple(f"q{i}" for i in range(1, masses + 1)) + tuple(f"v{i}" for i in range(1, masses + 1)))
    raise UserError(f"data.system={name!r} is not valid; choose one of: {', '.join(SYSTEMS)}")
