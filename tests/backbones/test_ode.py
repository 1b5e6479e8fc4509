"""Continuous-depth backbones: a residual stack *is* Euler's method, and the solvers behave as torchdiffeq's."""

import pytest
import torch

import backbones
from backbones.blocks import BlockOptions, block_class
from backbones.ode import ode_blocks

#: tiny, fast configurations of both families (the registry-wide contract test runs the defaults)
TINY = {"odenet": dict(width=8, zero_init_last=False), "ode_mlp": dict(in_channels=3, width=8, zero_init_last=False)}


def _input(name: str, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, 12, 12) if name == "odenet" else torch.randn(batch, 3)


@pytest.mark.parametrize(("L", "T"), [(1, 1.0), (4, 1.0), (6, 2.5)])
def test_euler_with_L_steps_is_a_weight_tied_resmlp_with_residual_scale_T_over_L(L: int, T: float) -> None:
    # The seed's analogy, checked on the registry's own names: x_{k+1} = x_k + (T/L) F(x_k) is one Euler step.
    torch.manual_seed(0)
    ode = backbones.create("ode_mlp", in_channels=5, width=16, solver="euler", steps=L, T=T, time="none",
                           zero_init_last=False).eval()
    resnet = backbones.create("resmlp", in_channels=5, width=16, depth=L, residual_scale=T / L).eval()
    resnet.stem.load_state_dict(ode.stem.state_dict())
    resnet.final_norm.load_state_dict(ode.final_norm.state_dict())
    for i in range(1, L + 1):  # tie every block to the ODE's one field
        getattr(resnet, f"block{i}").load_state_dict(ode.block1.func.block.state_dict())
    x = torch.randn(7, 5)
    with torch.no_grad():
        got, want = ode(x)[-1], resnet(x)[-1]
    assert ode.nfe_forward == L
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-6), (got - want).abs().max()
    # ... and a coarser stack is not the same function: the test can fail.
    coarse = backbones.create("resmlp", in_channels=5, width=16, depth=L, residual_scale=T / (L + 1)).eval()
    coarse.load_state_dict(resnet.state_dict())
    with torch.no_grad():
        assert not torch.allclose(coarse(x)[-1], want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("block", ["preact_basic", "preact_bottleneck"])
def test_euler_image_block_is_one_block_applied_L_times(block: str) -> None:
    torch.manual_seed(0)
    L, T = 5, 2.0
    net = backbones.create("odenet", in_channels=1, width=8, block=block, solver="euler", steps=L, T=T, time="none",
                           zero_init_last=False).eval()
    cls = block_class(block)
    tied = cls(BlockOptions(norm="group", residual_scale=T / L), 8, 8 // cls.expansion).eval()
    tied.load_state_dict(net.stage1[-1].func.block.state_dict())
    z = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        want = z
        for _ in range(L):  # the same module L times: weights tied
            want = tied(want)
        assert torch.allclose(net.stage1(z), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["odenet", "ode_mlp"])
@pytest.mark.parametrize(("solver", "per_step"), [("euler", 1), ("midpoint", 2), ("rk4", 4)])
@pytest.mark.parametrize("adjoint", [False, True])
def test_fixed_grid_solvers_run_forward_and_backward(name: str, solver: str, per_step: int, adjoint: bool) -> None:
    torch.manual_seed(0)
    model = backbones.create(name, **TINY[name], solver=solver, steps=3, adjoint=adjoint)
    model(_input(name))[-1].square().mean().backward()
    assert model.nfe_forward == 3 * per_step
    # Direct backprop replays the recorded steps; the adjoint evaluates f again on the same grid, backward.
    assert model.nfe_backward == (3 * per_step if adjoint else 0)
    block = ode_blocks(model)[0].func.block
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in block.parameters())
    assert any(p.grad.abs().sum() > 0 for p in block.parameters())


@pytest.mark.parametrize("name", ["odenet", "ode_mlp"])
def test_dopri5_nfe_is_counted_and_grows_as_the_tolerance_tightens(name: str) -> None:
    counts = []
    for tol in (1e-2, 1e-6):
        torch.manual_seed(0)
        model = backbones.create(name, **TINY[name], solver="dopri5", rtol=tol, atol=tol, T=2.0)
        model(_input(name))[-1].sum().backward()
        assert model.nfe_backward == 0
        counts.append(model.nfe_forward)
    assert 0 < counts[0] < counts[1], counts


@pytest.mark.parametrize(("solver", "tol", "rel"), [("rk4", 1e-3, 1e-4), ("dopri5", 1e-8, 1e-2)])
def test_adjoint_gradients_match_direct_backprop(solver: str, tol: float, rel: float) -> None:
    # On a fixed grid the adjoint system is integrated backward over the same 16 RK4 steps: both gradients
    # are fourth-order accurate and agree to ~1e-6 (measured: 2e-6 relative).
    # dopri5 controls the error of the state, not of its derivatives, and the ReLU in the branch makes
    # those jump: direct backprop through its few large steps is the less accurate of the two (measured
    # against a 256-step RK4 solve: 1.4% vs 0.02% max relative error at tol 1e-7), hence the 1% bound.
    def gradients(adjoint: bool) -> tuple[list[torch.Tensor], int]:
        torch.manual_seed(0)
        model = backbones.create("ode_mlp", in_channels=3, width=6, solver=solver, steps=16, rtol=tol, atol=tol,
                                 adjoint=adjoint, zero_init_last=False).double()
        with torch.no_grad():  # a time-dependent field, so the FiLM layer gets a gradient too
            model.block1.func.film.weight.normal_(0.0, 0.5)
        x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
        model(x)[-1].square().sum().backward()
        return [x.grad, *(p.grad for p in model.parameters())], model.nfe_backward

    direct, direct_nfe = gradients(adjoint=False)
    adjoint, adjoint_nfe = gradients(adjoint=True)
    assert direct_nfe == 0 and adjoint_nfe > 0
    for a, d in zip(adjoint, direct):
        assert (a - d).abs().max() <= rel * d.abs().max() + 1e-12, (a - d).abs().max()


def test_nfe_is_summed_over_stages_and_counts_only_what_ran() -> None:
    model = backbones.create("odenet", width=4, stages=2, solver="midpoint", steps=3).eval()
    assert [f.stride for f in model.feature_info] == [4, 8] and model.num_features == 8
    with torch.no_grad():
        model(torch.randn(1, 3, 16, 16))
        assert [b.nfe_forward for b in ode_blocks(model)] == [6, 6] and model.nfe_forward == 12
        model.forward_intermediates(torch.randn(1, 3, 16, 16), num_stages=1)
        assert model.nfe_forward == 6


def test_describe_counts_the_evaluations_of_a_fixed_grid() -> None:
    # describe() traces on the meta device, where solvers cannot branch on values: it counts steps x stages.
    def macs(solver: str, steps: int) -> int:
        return backbones.describe("odenet", (16, 16), width=8, solver=solver, steps=steps)["macs"]

    rk4 = [macs("rk4", s) for s in (1, 2, 3)]
    assert rk4[2] - rk4[1] == rk4[1] - rk4[0] > 0
    assert macs("euler", 4) == rk4[0] and macs("midpoint", 2) == rk4[0]  # four evaluations of f each


@pytest.mark.parametrize("name", ["odenet", "ode_mlp"])
@pytest.mark.parametrize(
    ("options", "needle"),
    [({"solver": "rk45"}, "solver='rk45' is not valid; choose one of: 'euler', 'midpoint', 'rk4', 'dopri5'"),
     ({"steps": 0}, "steps=0 is not valid"), ({"T": 0.0}, "T=0.0 is not valid"),
     ({"rtol": -1.0}, "tolerances"), ({"time": "concat"}, "time='concat' is not valid"),
     ({"solver": 4}, "expected str")],
)
def test_bad_options_are_one_line_value_errors(name: str, options: dict, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        backbones.create(name, **options)
    assert needle in str(info.value) and "\n" not in str(info.value)
