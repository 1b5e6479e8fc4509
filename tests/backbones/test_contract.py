"""The feature contract, checked for every registered backbone (as timm tests its registry)."""

import pytest
import torch

import backbones
from backbones.testing import check_contract

#: names whose full-size forward is too heavy for a CPU test at default width
HEAVY = {"resnet1202", "edsr", "wide_resnet28_10", "resnext101_32x8d", "quartznet15x5"}


def _input(model: torch.nn.Module, size: int) -> torch.Tensor:
    shape = {"image": (2, model.in_channels, size, size), "sequence": (2, model.in_channels, 4 * size),
             "vector": (2, model.in_channels)}[model.modality]
    return torch.randn(*shape)


@pytest.mark.parametrize("name", backbones.names())
def test_feature_contract(name: str) -> None:
    # The public helper plugin authors use: it raises with one line per violation.
    torch.manual_seed(0)
    model = backbones.create(name)
    assert backbones.entry(name).modality == model.modality
    check_contract(model, _input(model, 32 if name not in HEAVY else 16).shape)


@pytest.mark.parametrize("name", backbones.names("sequence"))
def test_output_lengths_match_real_output_lengths(name: str) -> None:
    model = backbones.create(name, in_channels=8).eval()
    lengths = torch.tensor([1, 2, 17, 40, 63])
    expected = [model(torch.randn(1, 8, int(n)))[-1].shape[-1] for n in lengths]
    assert model.output_lengths(lengths).tolist() == expected
    stride = model.feature_info[-1].stride
    assert expected == [-(-int(n) // stride) for n in lengths]


def test_output_lengths_follow_the_stride_option() -> None:
    lengths = torch.tensor([7, 8, 9])
    assert backbones.create("quartznet_small", stride=1).output_lengths(lengths).tolist() == [7, 8, 9]
    assert backbones.create("quartznet_small", stride=2).output_lengths(lengths).tolist() == [4, 4, 5]


def test_stem_of_imagenet_resnets_is_before_the_max_pool() -> None:
    model = backbones.create("resnet18").eval()
    assert (model.stem_info.channels, model.stem_info.stride) == (64, 2)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        stem, stages = model.forward_intermediates(x)
        assert torch.equal(stem, model.relu(model.bn1(model.conv1(x))))
        assert torch.equal(stages[0], model.layer1(model.maxpool(stem)))
    with pytest.raises(ValueError, match="num_stages"):
        model.forward_intermediates(x, num_stages=5)


def _largest_branch_outputs(model: torch.nn.Module) -> list[float]:
    """max |F(x)| of every residual block, on the input each block sees in one forward pass."""
    from backbones.blocks import ResidualBlock

    blocks = [m for m in model.modules() if isinstance(m, ResidualBlock)]
    inputs: dict[torch.nn.Module, torch.Tensor] = {}
    hooks = [b.register_forward_pre_hook(lambda mod, args: inputs.setdefault(mod, args[0].clone()))
             for b in blocks]
    try:
        with torch.no_grad():
            model.eval()(_input(model, 16))
            return [float(b.branch(inputs[b]).abs().max()) for b in blocks]
    finally:
        for h in hooks:
            h.remove()


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "preact_resnet18", "preact_resnet50", "resnet20",
                                  "edsr_tiny", "quartznet_small", "resmlp", "impala_cnn"])
def test_zero_init_last_makes_every_branch_zero(name: str) -> None:
    # Every family initialises its layers first, then calls block.zero_init_last(): each
    # residual branch must then compute exactly zero, whatever the network-level init did.
    torch.manual_seed(0)
    zeroed = _largest_branch_outputs(backbones.create(name, zero_init_last=True))
    assert zeroed and max(zeroed) == 0
    torch.manual_seed(0)
    assert min(_largest_branch_outputs(backbones.create(name, zero_init_last=False))) > 0


def test_highway_gate_keeps_its_init_after_the_network_init() -> None:
    model = backbones.create("resnet18", gate="highway")
    gates = [m.gate for m in model.modules() if getattr(m, "gate", None) is not None]
    assert gates and all(torch.count_nonzero(g.weight) == 0 and torch.all(g.bias == -2.0) for g in gates)


def test_names_are_sorted_and_filtered_by_modality() -> None:
    all_names = backbones.names()
    assert all_names == sorted(all_names)
    assert set(backbones.names("image")) | set(backbones.names("sequence")) | set(
        backbones.names("vector")) == set(all_names)
    assert "quartznet5x5" in backbones.names("sequence") and "resmlp" in backbones.names("vector")
    for required in ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "resnext50_32x4d",
                     "wide_resnet50_2", "preact_resnet18", "preact_resnet34", "preact_resnet50",
                     "se_resnet50", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110",
                     "resnet1202", "preact_resnet110", "preact_resnet164", "wide_resnet28_10",
                     "plain20", "plain32", "plain44", "plain56", "plain110", "impala_cnn"]:
        assert required in all_names


def test_parameter_counts_match_the_papers() -> None:
    # He et al. 2015 Table 6 (CIFAR): resnet20 0.27M, resnet56 0.85M, resnet110 1.7M.
    def count(name: str) -> float:
        return sum(p.numel() for p in backbones.create(name).parameters()) / 1e6

    assert count("resnet20") == pytest.approx(0.27, abs=0.01)
    assert count("resnet56") == pytest.approx(0.85, abs=0.01)
    assert count("resnet110") == pytest.approx(1.73, abs=0.02)
    # torchvision resnet50 has 25.56M of which the fc is 2.05M.
    assert count("resnet50") == pytest.approx(23.51, abs=0.01)


def test_plain_twin_has_same_depth_and_widths() -> None:
    res, plain = backbones.create("resnet56"), backbones.create("plain56")
    assert [f.channels for f in res.feature_info] == [f.channels for f in plain.feature_info]
    conv = lambda m: sum(isinstance(x, torch.nn.Conv2d) for x in m.modules())  # noqa: E731
    # option B adds one 1x1 projection per shape change (two in a CIFAR net)
    assert conv(res) == conv(plain) + 2
    assert backbones.create("resnet56", shortcut="none").state_dict().keys() == plain.state_dict().keys()


def test_in_channels_for_every_family() -> None:
    for name in ["resnet18", "resnet20", "impala_cnn", "edsr_baseline"]:
        m = backbones.create(name, in_channels=1)
        assert m(torch.randn(2, 1, 32, 32))[-1].shape[0] == 2
    assert backbones.create("quartznet_small", in_channels=80)(torch.randn(1, 80, 40))[-1].shape[-1] == 20
    assert backbones.create("resmlp", in_channels=8, width=32, depth=3)(torch.randn(5, 8))[-1].shape == (5, 32)


def test_describe_counts_params_and_macs() -> None:
    info = backbones.describe("resnet50")
    assert info["params"] == 23_508_032
    assert info["macs"] == pytest.approx(4.09e9, rel=0.01)  # torchvision reports 4.09 GFLOPS (MACs)
    small = backbones.describe("resnet20", (32, 32))
    assert small["strides"] == [1, 2, 4] and 40e6 < small["macs"] < 42e6
