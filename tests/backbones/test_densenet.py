"""DenseNet: torchvision weights load strictly and give the same maps; Huang et al.'s counts; the plain analog."""

import pytest
import torch
import torchvision
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator

import backbones
from backbones import diagnostics
from backbones.densenet import CifarDenseNet, DenseLayer, remap_legacy_keys


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _randomised_torchvision(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None).eval()
    for m in reference.modules():  # non-trivial BN statistics and scales, so a mix-up would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)
    return reference


def test_torchvision_densenet121_loads_strictly_and_every_stage_matches_exactly(tmp_path) -> None:
    reference = _randomised_torchvision("densenet121")
    path = tmp_path / "densenet121.pth"
    torch.save(reference.state_dict(), path)
    ours = backbones.load_torchvision_weights(backbones.create("densenet121"), path).eval()
    x = torch.randn(2, 3, 64, 64)
    taps: dict[str, torch.Tensor] = {}
    hooks = [getattr(reference.features, f"denseblock{i}").register_forward_hook(
        lambda _m, _i, out, i=i: taps.__setitem__(f"denseblock{i}", out)) for i in (1, 2, 3)]
    with torch.no_grad():
        stem, stages = ours.forward_intermediates(x)
        theirs = torch.relu(reference.features(x))  # what torchvision's classifier pools
        logits = reference(x)
    for h in hooks:
        h.remove()
    f = reference.features
    with torch.no_grad():
        assert (stem - f.relu0(f.norm0(f.conv0(x)))).abs().max().item() == 0
    for i in (1, 2, 3):
        assert (stages[i - 1] - taps[f"denseblock{i}"]).abs().max().item() == 0
    assert (stages[3] - theirs).abs().max().item() == 0
    # The classifier on our last stage reproduces torchvision's logits.
    pooled = stages[3].mean((2, 3))
    assert torch.allclose(reference.classifier(pooled), logits, atol=1e-5)
    assert _count(ours) == _count(reference) - _count(reference.classifier)


def test_torchvision_state_dict_in_memory_and_legacy_key_names() -> None:
    # torchvision's downloadable files name denselayer's norm1 "norm.1"; remap_legacy_keys renames them.
    state = torchvision.models.densenet121(weights=None).state_dict()
    legacy = {k.replace("norm1.", "norm.1.").replace("conv2.", "conv.2.") if "denselayer" in k else k: v
              for k, v in state.items()}
    assert legacy.keys() != state.keys()
    assert remap_legacy_keys(legacy).keys() == state.keys()
    backbones.load_torchvision_weights(backbones.create("densenet121"), remap_legacy_keys(legacy))
    with pytest.raises(ValueError, match="do not match"):
        backbones.load_torchvision_weights(backbones.create("densenet169"), state)


@pytest.mark.parametrize("name", ["densenet121", "densenet169"])
def test_imagenet_counts_equal_torchvision(name: str) -> None:
    reference = getattr(torchvision.models, name)(weights=None)
    assert _count(backbones.create(name)) == _count(reference) - _count(reference.classifier)


def test_parameter_counts_match_huang_et_al_table_2() -> None:
    # Huang et al. 2017, Table 2 (CIFAR-10 nets, 10-way classifier included): DenseNet-BC (L=100, k=12) 0.8M,
    # DenseNet-BC (L=190, k=40) 25.6M, DenseNet (L=40, k=12; no bottleneck, no compression) 1.0M.
    def with_head(model: torch.nn.Module) -> float:
        return (_count(model) + model.num_features * 10 + 10) / 1e6

    assert round(with_head(backbones.create("densenet_bc_100_k12")), 1) == 0.8
    with torch.device("meta"):  # shapes only: 25.6M parameters need no memory to be counted
        assert round(with_head(backbones.create("densenet_bc_190_k40")), 1) == 25.6
    basic = CifarDenseNet(40, 12, bn_size=0, compression=1.0)
    assert round(with_head(basic), 1) == 1.0
    assert [f.channels for f in basic.feature_info] == [16 + 12 * 12, 160 + 12 * 12, 304 + 12 * 12]


def test_plain_analog_keeps_depth_and_every_layer_width() -> None:
    dense, plain = backbones.create("densenet_bc_40_k12"), backbones.create("plain_densenet_bc_40_k12")
    layers = lambda m: [x for x in m.modules() if isinstance(x, DenseLayer)]  # noqa: E731
    assert len(layers(dense)) == len(layers(plain)) == 18
    convs = lambda m: [(x.kernel_size, x.stride) for x in m.modules() if isinstance(x, torch.nn.Conv2d)]  # noqa: E731
    assert convs(dense) == convs(plain)  # same layers in the same order: same depth
    # Layer l of a plain block sees only its predecessor and outputs the dense concatenation's width.
    for d, p in zip(layers(dense), layers(plain)):
        assert d.norm1.num_features == p.norm1.num_features
        assert p.conv2.out_channels == p.norm1.num_features + 12 and d.conv2.out_channels == 12
    x = torch.randn(2, 3, 32, 32)
    seen: list[int] = []
    hooks = [m.register_forward_pre_hook(lambda _m, args: seen.append(len(args[0]) if isinstance(args[0], list)
                                                                        else 1)) for m in layers(plain)]
    shapes = [f.shape for f in plain(x)]
    for h in hooks:
        h.remove()
    assert seen == [1] * 18  # one input tensor per layer: no concatenation
    assert shapes == [f.shape for f in dense(x)]
    assert _count(plain) > _count(dense)  # parameters are not kept equal (the docstring says so)


def test_memory_efficient_gives_the_same_outputs_and_gradients() -> None:
    torch.manual_seed(0)
    plain = backbones.create("densenet_bc_40_k12")
    torch.manual_seed(0)
    efficient = backbones.create("densenet_bc_40_k12", memory_efficient=True)
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 16, 16)
    a, b = plain(x)[-1], efficient(x)[-1]
    assert torch.allclose(a, b, atol=1e-6)
    a.square().mean().backward()
    b.square().mean().backward()
    for (name, p), q in zip(plain.named_parameters(), efficient.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6, rtol=1e-4), name


def test_drop_rate_acts_only_while_training() -> None:
    torch.manual_seed(0)
    model = backbones.create("densenet_bc_40_k12", drop_rate=0.5)
    x = torch.randn(2, 3, 16, 16)
    assert not torch.equal(model(x)[0], model(x)[0])
    model.eval()
    assert torch.equal(model(x)[0], model(x)[0])


@pytest.mark.parametrize(("options", "needle"), [
    ({"growth_rate": 0}, "growth_rate=0"), ({"compression": 1.5}, "compression=1.5"),
    ({"bn_size": -1}, "bn_size=-1"), ({"drop_rate": 1.0}, "drop_rate=1.0"), ({"depth": 99}, "depth=99"),
    ({"depth": 41, "bn_size": 0}, "3n+4"), ({"block_config": [3, 0]}, "block_config"),
])
def test_option_errors_are_one_line(options: dict, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        CifarDenseNet(**options)
    assert needle in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(("options", "needle"), [
    ({"compression": "half"}, "expected float"), ({"dense_connectivity": 1}, "expected bool"),
    ({"growth_rate": 24}, "does not take option 'growth_rate'"),  # fixed by the name, as a ResNet's depth
])
def test_registry_checks_option_types_up_front(options: dict, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        backbones.create("densenet_bc_100_k12", **options)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_block_config_and_odd_sizes_follow_the_contract() -> None:
    model = backbones.create("densenet_bc_100_k12", block_config=[2, 3, 4], in_channels=1).eval()
    assert [len(getattr(model, f"denseblock{i}")) for i in (1, 2, 3)] == [2, 3, 4]
    assert [f.stride for f in model.feature_info] == [1, 2, 4]
    feats = model(torch.randn(2, 1, 27, 27))  # odd sizes round up: 27 -> 14 -> 7
    assert [f.shape[-1] for f in feats] == [27, 14, 7]
    assert [f.shape[1] for f in feats] == [f.channels for f in model.feature_info]


def test_gradient_norms_report_one_number_per_dense_layer() -> None:
    torch.manual_seed(0)
    model = backbones.create("densenet_bc_40_k12")
    norms = diagnostics.gradient_norms(model, model(torch.randn(4, 3, 16, 16))[-1].square().mean())
    assert list(norms) == [f"denseblock{b}.denselayer{i}" for b in (1, 2, 3) for i in range(1, 7)]
    assert all(v > 0 for v in norms.values())


def test_faster_rcnn_on_densenet121_through_the_fpn_adapter() -> None:
    body = backbones.adapters.fpn(backbones.create("densenet121"), out_channels=32, returned_stages=[1, 2, 3])
    assert body.strides == [8, 16, 32]
    anchors = AnchorGenerator(((16,), (32,), (64,), (128,)), ((1.0,),) * 4)
    model = FasterRCNN(body, num_classes=3, rpn_anchor_generator=anchors, min_size=64, max_size=64).train()
    images = [torch.rand(3, 64, 64) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[4.0, 6.0, 40.0, 50.0]]), "labels": torch.tensor([1])}] * 2
    loss = sum(model(images, targets).values())
    loss.backward()
    assert torch.isfinite(loss) and body.body.conv0.weight.grad is not None


def test_smp_unet_on_a_densenet_encoder(monkeypatch) -> None:
    smp = pytest.importorskip("segmentation_models_pytorch")
    from segmentation_models_pytorch.encoders import encoders

    from backbones.adapters.smp import ResidualEncoder

    monkeypatch.setitem(encoders, "rs-densenet121", {"encoder": ResidualEncoder, "pretrained_settings": {},
                                                     "params": {"backbone_name": "densenet121"}})
    model = smp.Unet(encoder_name="rs-densenet121", encoder_weights=None, in_channels=1, classes=2)
    assert list(model.encoder.out_channels) == [1, 64, 256, 512, 1024, 1024]
    y = model(torch.randn(2, 1, 64, 64))
    assert y.shape == (2, 2, 64, 64)
