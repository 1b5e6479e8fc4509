"""Continuous-depth backbones (Chen et al. 2018, Neural ODEs): residual blocks read as ODE solver steps.

A residual block ``x_{k+1} = x_k + a * F(x_k)`` is one explicit Euler step of ``dx/dt = F(x)`` with
step ``a``. An :class:`ODEBlock` takes that reading literally: it integrates ``dx/dt = f(x, t)``
over ``[0, T]`` with `torchdiffeq <https://github.com/rtqichen/torchdiffeq>`_, where ``f`` is the
*branch* of one of the registry's residual blocks (``BasicBlock``/``PreActBasicBlock``/... for
images, the residual MLP's ``MLPBlock`` for vectors), so the same weights define a layer of a
ResNet and the vector field of an ODE. With ``solver="euler", steps=L`` and ``time="none"`` the
block computes exactly a weight-tied stack of ``L`` residual blocks with ``residual_scale=T/L``
(``tests/backbones/test_ode.py`` checks it).

Options shared by both families:

``solver``
    ``euler``, ``midpoint``, ``rk4`` (fixed grid of ``steps`` steps; torchdiffeq's ``rk4`` is the
    3/8 rule) or ``dopri5`` (adaptive, error controlled by ``rtol``/``atol``; ``steps`` unused).
``T``
    The integration time: the "depth" of the block.
``adjoint``
    Backpropagate with the adjoint method (``torchdiffeq.odeint_adjoint``): memory independent of
    the number of steps, at the price of integrating the adjoint system backward in time. ``dopri5``
    controls the error of the state, not of its derivative: direct backprop through its few large
    steps can give much less accurate gradients than the adjoint (measured in the README).
``time``
    How ``f`` sees ``t``. ``film`` (default) scales and shifts the branch output per channel,
    ``f(x, t) = (1 + g(t)) * F(x) + b(t)`` with ``g, b`` linear in ``t`` and zero at init (FiLM,
    Perez et al. 2018). It acts on the output because the registry branches start with (or
    contain) a norm that would undo a per-channel affine of their input, and the branches stay
    unchanged. ``none`` makes the field autonomous, ``f(x, t) = F(x)``.

The number of function evaluations of the last forward and of the last backward pass are
``nfe_forward`` / ``nfe_backward`` on every block, summed on the backbone. Direct backpropagation
evaluates ``f`` no more (``nfe_backward = 0``: autograd replays the recorded solver steps); the
adjoint method evaluates it again backward in time.

``zero_init_last`` is off by default (as in Chen et al.): a field that is exactly zero starts
``dopri5`` at its smallest trial step (about 40 evaluations at init instead of about 20).

Norms: ``group`` (images) and ``layer`` (vectors) are the defaults, as in Chen et al.; batch norm
works but sees a different batch statistic at every evaluation and updates its running
statistics once per evaluation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from .base import Backbone, FeatureInfo, Intermediates
from .blocks import BlockOptions, ResidualBlock, _choice, block_class, init_residual_blocks, make_norm
from .registry import register
from .resnet import _init_weights
from .vector import MLPBlock

#: function evaluations per step of each solver (dopri5: per step tried; the 7th stage is the next step's 1st)
SOLVERS = {"euler": 1, "midpoint": 2, "rk4": 4, "dopri5": 6}
FIXED_GRID = ("euler", "midpoint", "rk4")
TIME_INPUTS = ("film", "none")


class ODEFunc(nn.Module):
    """``f(x, t)``: a residual block's branch, conditioned on ``t`` by FiLM; counts its evaluations.

    Calls made while autograd runs a backward pass through the owning block (the adjoint
    method's) count as backward evaluations, all others as forward ones.
    """

    def __init__(self, block: ResidualBlock, channels: int, time: str = "film") -> None:
        super().__init__()
        _choice("time", time, TIME_INPUTS)
        self.block = block
        self.film = nn.Linear(1, 2 * channels) if time == "film" else None
        self.reset_film()
        self.forward_calls = 0
        self.backward_calls = 0
        self.in_backward = False

    def reset_film(self) -> None:
        """Start time-independent: ``g(t) = b(t) = 0``, so ``f`` is the branch itself."""
        if self.film is not None:
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def start_forward(self) -> None:
        """A forward pass begins; one that records a graph starts a new backward count too."""
        self.in_backward = False
        self.forward_calls = 0
        if torch.is_grad_enabled():
            self.backward_calls = 0

    def start_backward(self, grad: torch.Tensor) -> None:
        """Tensor hook on the block's output: autograd reached the block, its backward begins."""
        self.in_backward = True

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self.in_backward:
            self.backward_calls += 1
        else:
            self.forward_calls += 1
        fx = self.block.branch(x)
        if self.film is None:
            return fx
        film = self.film(t.reshape(1, 1).to(fx.dtype)).reshape(2, 1, fx.shape[1], *([1] * (fx.dim() - 2)))
        return fx * (1 + film[0]) + film[1]


def _grid(steps: int) -> Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]:
    """torchdiffeq ``grid_constructor``: ``steps`` equal steps between the first and last time.

    Built from the times it is given (not from ``T``) because the adjoint pass integrates the same
    grid backward in time; the end points are set exactly, as torchdiffeq asserts.
    """

    def construct(func: nn.Module, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        fraction = torch.linspace(0.0, 1.0, steps + 1, dtype=t.dtype, device=t.device)
        grid = t[0] + (t[-1] - t[0]) * fraction
        grid[0], grid[-1] = t[0], t[-1]
        return grid

    return construct


class ODEBlock(nn.Module):
    """``x(T)`` for ``dx/dt = func(t, x)``, ``x(0)`` the input: one continuous-depth layer.

    ``nfe_forward``/``nfe_backward``: evaluations of ``func`` in the last forward / backward pass.
    """

    def __init__(self, func: ODEFunc, *, solver: str = "dopri5", steps: int = 4, T: float = 1.0,
                 rtol: float = 1e-3, atol: float = 1e-3, adjoint: bool = False) -> None:
        super().__init__()
        _choice("solver", solver, tuple(SOLVERS))
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"steps={steps!r} is not valid; give a positive integer (fixed-grid solvers' step count)")
        if not T > 0:
            raise ValueError(f"T={T!r} is not valid; give a positive integration time")
        if not (rtol > 0 and atol > 0):
            raise ValueError(f"rtol={rtol!r}, atol={atol!r} are not valid; give positive tolerances")
        self.func = func
        self.solver, self.steps, self.T = solver, steps, float(T)
        self.rtol, self.atol, self.adjoint = float(rtol), float(atol), adjoint

    @property
    def nfe_forward(self) -> int:
        return self.func.forward_calls

    @property
    def nfe_backward(self) -> int:
        return self.func.backward_calls

    def nominal_nfe(self) -> int:
        """Evaluations of a fixed-grid solve (``steps`` times the solver's stages); one step for dopri5."""
        return SOLVERS[self.solver] * (self.steps if self.solver in FIXED_GRID else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.func.start_forward()
        if x.is_meta:
            return self._shape_only(x)
        # Imported here: torchdiffeq pulls in scipy.integrate (~0.5 s), which `import backbones` need not pay.
        from torchdiffeq import odeint, odeint_adjoint

        # Half-precision states would make the adaptive error control and the grid coarse: integrate
        # in float32 (f's layers still run in the autocast dtype) and hand back the input's dtype.
        state = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        t = torch.tensor([0.0, self.T], dtype=state.dtype, device=state.device)
        options = {"grid_constructor": _grid(self.steps)} if self.solver in FIXED_GRID else None
        solve = odeint_adjoint if self.adjoint and torch.is_grad_enabled() else odeint
        out = solve(self.func, state, t, rtol=self.rtol, atol=self.atol, method=self.solver, options=options)[-1]
        if out.requires_grad:
            out.register_hook(self.func.start_backward)
        return out.to(x.dtype)

    def _shape_only(self, x: torch.Tensor) -> torch.Tensor:
        """On the meta device (``backbones.describe``): solvers branch on values, so take ``nominal_nfe``
        Euler steps instead; the counted multiply-adds are those of that many evaluations of ``f``."""
        evals = self.nominal_nfe()
        t = x.new_zeros(())
        for _ in range(evals):
            x = x + (self.T / evals) * self.func(t, x)
        return x

    def extra_repr(self) -> str:
        tol = f"rtol={self.rtol:g}, atol={self.atol:g}" if self.solver not in FIXED_GRID else f"steps={self.steps}"
        return f"solver={self.solver}, {tol}, T={self.T:g}, adjoint={self.adjoint}"


def ode_blocks(model: nn.Module) -> list[ODEBlock]:
    """Every :class:`ODEBlock` inside ``model`` (``[]`` for a discrete-depth network)."""
    return [m for m in model.modules() if isinstance(m, ODEBlock)]


def nfe(blocks: Iterable[ODEBlock]) -> dict[str, int]:
    """``{"nfe_forward", "nfe_backward"}`` summed over ``blocks`` (what a training loop logs)."""
    blocks = list(blocks)
    return {"nfe_forward": sum(b.nfe_forward for b in blocks), "nfe_backward": sum(b.nfe_backward for b in blocks)}


class _ContinuousDepth(Backbone):
    """What both families share: NFE summed over their blocks, reset at every forward."""

    @property
    def nfe_forward(self) -> int:
        return nfe(ode_blocks(self))["nfe_forward"]

    @property
    def nfe_backward(self) -> int:
        return nfe(ode_blocks(self))["nfe_backward"]

    def forward_intermediates(self, x: torch.Tensor, num_stages: int | None = None) -> Intermediates:
        # Stages this call leaves out must not report the evaluations of an earlier call.
        for block in ode_blocks(self):
            block.func.forward_calls = 0
        return super().forward_intermediates(x, num_stages)


class ODENet(_ContinuousDepth):
    """Images: a downsampling stem, then one ODE block per stage (Chen et al. 2018's MNIST ODE-Net).

    Stem: conv3x3 - norm - ReLU - conv3x3/2 - norm - ReLU - conv3x3/2 (stride 4; the paper's
    strided convs are 4x4, odd kernels here keep every stride ``ceil(input / stride)``). Stage 1
    integrates ``f`` = the branch of a ``block`` (``preact_basic``: norm-ReLU-conv twice, the
    paper's ODE function without its time channels) at ``width`` channels. Each further stage
    halves the resolution and doubles the width with norm - ReLU - conv3x3/2, then integrates its
    own ODE block. The last stage ends with norm - ReLU, as pre-activation nets do.
    """

    default_input_size = (28, 28)

    def __init__(self, *, in_channels: int = 3, width: int = 64, stages: int = 1, block: str = "preact_basic",
                 norm: str = "group", time: str = "film", solver: str = "dopri5", steps: int = 4, T: float = 1.0,
                 rtol: float = 1e-3, atol: float = 1e-3, adjoint: bool = False, zero_init_last: bool = False) -> None:
        super().__init__(in_channels)
        if width < 1 or stages < 1:
            raise ValueError(f"width={width}, stages={stages} are not valid; give positive integers")
        cls = block_class(block)
        opts = BlockOptions(norm=norm, zero_init_last=zero_init_last)
        solver_options = dict(solver=solver, steps=steps, T=T, rtol=rtol, atol=atol, adjoint=adjoint)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, 1, 1), make_norm(norm, width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, 2, 1), make_norm(norm, width), nn.ReLU(inplace=True),
            nn.Conv2d(width, width, 3, 2, 1))
        self.stem_info = FeatureInfo(width, 4, "stem")
        channels, stride = width, 4
        for i in range(1, stages + 1):
            layers: list[nn.Module] = []
            if i > 1:
                layers += [make_norm(norm, channels), nn.ReLU(inplace=True),
                           nn.Conv2d(channels, 2 * channels, 3, 2, 1)]
                channels, stride = 2 * channels, 2 * stride
            if channels % cls.expansion:
                raise ValueError(f"width={width} is not valid for {block} blocks; give a multiple of {cls.expansion}")
            func = ODEFunc(cls(opts, channels, channels // cls.expansion), channels, time)
            layers.append(ODEBlock(func, **solver_options))
            setattr(self, f"stage{i}", nn.Sequential(*layers))
            self.feature_info.append(FeatureInfo(channels, stride, f"stage{i}"))
        self.final_norm = make_norm(norm, channels)
        # Convs and norms, then the blocks' own starting points (zero_init_last); FiLM layers keep their zeros.
        _init_weights(self)

    def head_norm(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.final_norm(x))


class ODEMLP(_ContinuousDepth):
    """Vectors: the residual MLP (``resmlp``) with each of its ``depth`` blocks an ODE block.

    Linear stem to ``width`` (+ ReLU); stage ``block{i}`` integrates its own ``f`` = the pre-norm
    MLP branch ``W2 relu(W1 norm(x))``; final norm + ReLU. Same option names as ``resmlp``, so it
    drops in wherever that is used (``backbone.name=ode_mlp`` on DQN's recipes). Chen et al. use
    one block (the default); a ``resmlp`` of ``L`` blocks is one block with ``solver="euler",
    steps=L`` when its blocks share their weights.
    """

    modality = "vector"

    def __init__(self, *, in_channels: int = 4, width: int = 128, depth: int = 1, expansion: int = 2,
                 norm: str = "layer", time: str = "film", solver: str = "dopri5", steps: int = 4, T: float = 1.0,
                 rtol: float = 1e-3, atol: float = 1e-3, adjoint: bool = False, zero_init_last: bool = False) -> None:
        super().__init__(in_channels)
        if width < 1 or depth < 1 or expansion < 1:
            raise ValueError(f"width={width}, depth={depth}, expansion={expansion} are not valid; "
                             "give positive integers")
        self.stem = nn.Sequential(nn.Linear(in_channels, width), nn.ReLU(inplace=True))
        self.stem_info = FeatureInfo(width, 1, "stem")
        opts = BlockOptions(norm=norm, zero_init_last=zero_init_last)
        for i in range(1, depth + 1):
            func = ODEFunc(MLPBlock(opts, width, expansion), width, time)
            setattr(self, f"block{i}", ODEBlock(func, solver=solver, steps=steps, T=T, rtol=rtol, atol=atol,
                                                adjoint=adjoint))
            self.feature_info.append(FeatureInfo(width, 1, f"block{i}"))
        self.final_norm = make_norm(norm, width, dims=0)
        init_residual_blocks(self)  # PyTorch's default init elsewhere, as resmlp

    def head_norm(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.final_norm(x))


register("odenet", "image")(ODENet)
register("ode_mlp", "vector")(ODEMLP)
