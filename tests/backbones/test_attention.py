"""Residual Attention Networks: (1 + M) * T vs M * T, the mask's shapes, Wang et al.'s depths and counts."""

import pytest
import torch

import backbones
from backbones import diagnostics
from backbones.attention import AttentionModule, SoftMaskBranch
from backbones.blocks import ResidualBlock


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _trunk_units(model: torch.nn.Module) -> list[ResidualBlock]:
    """Residual units on the trunk path (outside every soft-mask branch)."""
    masks = [m for m in model.modules() if isinstance(m, SoftMaskBranch)]
    inside = {id(u) for m in masks for u in m.modules()}
    return [m for m in model.modules() if isinstance(m, ResidualBlock) and id(m) not in inside]


@pytest.mark.parametrize(("name", "depth", "units_per_layer"), [
    ("attention56", 56, 3), ("attention92", 92, 3), ("attention56_cifar", 56, 3), ("attention92_cifar", 92, 3),
    ("attention20_cifar", 20, 2)])
def test_trunk_depth_is_the_name(name: str, depth: int, units_per_layer: int) -> None:
    with torch.device("meta"):
        model = backbones.create(name)
    # stem conv + classifier + the trunk's residual units (bottleneck: 3 layers, basic: 2)
    assert 2 + units_per_layer * len(_trunk_units(model)) == depth


def test_parameter_counts_match_wang_et_al_table_4() -> None:
    # Wang et al. 2017, Table 4 (ImageNet, 1000-way classifier included): Attention-56 31.9M, Attention-92 51.3M.
    # osmr/imgclsmob's independent PyTorch ResAttNet counts 31,810,728 and 52,466,344; ours differ from those
    # by exactly the BatchNorm after each of the 4 projection shortcuts (2 * (256 + 512 + 1024 + 2048) = 7,680).
    head = 2048 * 1000 + 1000
    with torch.device("meta"):
        a56, a92 = _count(backbones.create("attention56")) + head, _count(backbones.create("attention92")) + head
    assert a56 == 31_810_728 + 7_680 and a92 == 52_466_344 + 7_680
    assert a56 / 1e6 == pytest.approx(31.9, rel=0.005)
    assert a92 / 1e6 == pytest.approx(51.3, rel=0.025)  # the paper's table is 2.3% below both implementations
    # The same table's FLOPs (multiply-adds at 224x224): 6.3G and 10.4G.
    assert backbones.describe("attention56")["macs"] == pytest.approx(6.3e9, rel=0.01)
    assert backbones.describe("attention92")["macs"] == pytest.approx(10.4e9, rel=0.02)


def _module(**options: object) -> AttentionModule:
    torch.manual_seed(0)
    model = backbones.create("attention20_cifar", **options).eval()
    return next(m for m in model.modules() if isinstance(m, AttentionModule))


def test_attention_residual_learning_passes_the_trunk_where_the_mask_is_zero(monkeypatch) -> None:
    x = torch.randn(2, 16, 12, 12)
    for residual in (True, False):
        module = _module(attention_residual=residual)
        monkeypatch.setattr(module.mask, "forward", lambda inp, trunk: torch.zeros_like(trunk))
        with torch.no_grad():
            trunk = module.trunk(module.pre(x))
            expected = module.post(trunk if residual else torch.zeros_like(trunk))  # (1 + 0) T  vs  0 * T
            assert torch.equal(module(x), expected)


def test_mask_is_a_gate_of_the_trunk_shape_for_odd_sizes() -> None:
    module = _module()
    for size in (28, 27, 9):
        x = torch.randn(2, 16, size, size)
        with torch.no_grad():
            trunk = module.trunk(x)
            mask = module.mask(x, trunk)
        assert mask.shape == trunk.shape and bool(((mask >= 0) & (mask <= 1)).all())  # a sigmoid (may saturate)
        assert 0.2 < float(mask.mean()) < 0.8
        with torch.no_grad():
            arl, nal = (1 + mask) * trunk, mask * trunk
            assert torch.allclose(module(x), module.post(arl)) and not torch.allclose(arl, nal)


def test_mask_depth_sets_the_down_sampling_steps() -> None:
    model = backbones.create("attention56_cifar", mask_depth=[3, 2, 1])
    masks = [m for m in model.modules() if isinstance(m, SoftMaskBranch)]
    assert [len(m.down) for m in masks] == [3, 2, 1] and [len(m.skips) for m in masks] == [2, 1, 0]
    assert [len(m.down) for m in backbones.create("attention92").modules() if isinstance(m, SoftMaskBranch)] == [
        3, 2, 2, 1, 1, 1]
    feats = model.eval()(torch.randn(2, 3, 32, 32))
    assert [f.shape[-1] for f in feats] == [32, 16, 8]


@pytest.mark.parametrize(("options", "needle"), [
    ({"mask_depth": 0}, "mask_depth=0"), ({"mask_depth": [1, 1]}, "mask_depth"),
    ({"modules_per_stage": [1, 1]}, "does not take option"), ({"trunk_units": 0}, "trunk_units=0"),
    ({"final_units": -1}, "final_units=-1"), ({"layout": "vit"}, "does not take option"),
    ({"attention_residual": "no"}, "expected bool"), ({"widths": [16, 32]}, "widths")])
def test_option_errors_are_one_line(options: dict, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        backbones.create("attention56_cifar", **options)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_plain_units_and_zero_init_follow_the_block_options() -> None:
    plain = backbones.create("attention20_cifar", shortcut="none")
    assert all(not u.opts.residual for u in plain.modules() if isinstance(u, ResidualBlock))
    torch.manual_seed(0)
    model = backbones.create("attention56_cifar", zero_init_last=True)
    assert all(torch.count_nonzero(u.conv3.weight) == 0 for u in _trunk_units(model))


def test_gradient_norms_count_trunk_units_and_each_mask_once() -> None:
    torch.manual_seed(0)
    model = backbones.create("attention20_cifar", in_channels=1)
    loss = model(torch.randn(4, 1, 28, 28))[-1].square().mean()
    norms = diagnostics.gradient_norms(model, loss)
    names = list(norms)
    assert sum(n.endswith(".mask") for n in names) == 3
    assert len(names) == 3 + 9  # three masks and resnet20's nine trunk blocks
    assert all(v > 0 for v in norms.values())


def test_fpn_levels_on_attention56() -> None:
    body = backbones.adapters.fpn(backbones.create("attention56"), out_channels=32)
    maps = body(torch.randn(1, 3, 64, 64))
    assert [m.shape[-1] for m in maps.values()] == [16, 8, 4, 2, 1]
