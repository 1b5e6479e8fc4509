"""Block options: shortcuts A/B/C/none, drop-path, residual scaling, gate, norms, errors."""

import pytest
import torch

import backbones
from backbones.blocks import BlockOptions, ZeroPadShortcut, resolve_options


def _params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_shortcut_options_change_only_the_projections() -> None:
    a, b, c = (backbones.create("resnet20", shortcut=s) for s in ("A", "B", "C"))
    assert _params(a) < _params(b) < _params(c)
    assert any(isinstance(m, ZeroPadShortcut) for m in a.modules())
    assert backbones.create("resnet20", shortcut="identity").state_dict().keys() == b.state_dict().keys()
    x = torch.randn(2, 3, 16, 16)
    for m in (a, b, c, backbones.create("plain20")):
        assert m(x)[-1].shape == (2, 64, 4, 4)


def test_zero_pad_shortcut_is_subsample_plus_zero_channels() -> None:
    x = torch.randn(1, 2, 4, 4)
    y = ZeroPadShortcut(2, 4, 2)(x)
    assert torch.equal(y[:, :2], x[:, :, ::2, ::2]) and y[:, 2:].abs().sum() == 0


def test_zero_init_last_makes_blocks_identity_at_start() -> None:
    torch.manual_seed(0)
    m = backbones.create("resnet20").eval()
    block = m.layer1[0]
    x = torch.relu(torch.randn(2, 16, 8, 8))  # block input follows a ReLU
    assert torch.allclose(block(x), x)


def test_drop_path_is_linear_over_depth_and_only_in_training() -> None:
    opts = resolve_options(5, drop_path=0.2)
    assert [round(o.drop_path, 3) for o in opts] == [0.0, 0.05, 0.1, 0.15, 0.2]
    m = backbones.create("preact_resnet110", drop_path=0.1, residual_scale="1/L")
    assert m.layer3[-1].drop_path.rate == pytest.approx(0.1)
    assert m.layer1[0].opts.residual_scale == pytest.approx(1 / 54)
    x = torch.randn(2, 3, 16, 16)
    m.eval()
    assert torch.equal(m(x)[-1], m(x)[-1])


def test_residual_scale_multiplies_the_branch() -> None:
    torch.manual_seed(0)
    m1 = backbones.create("resnet20", zero_init_last=False).eval()
    torch.manual_seed(0)
    m2 = backbones.create("resnet20", zero_init_last=False, residual_scale=0.0).eval()
    x = torch.randn(1, 16, 8, 8)
    blk1, blk2 = m1.layer1[0], m2.layer1[0]
    assert torch.allclose(blk2(x), torch.relu(x)) and not torch.allclose(blk1(x), torch.relu(x))


def test_highway_gate_starts_mostly_carrying() -> None:
    m = backbones.create("resnet20", gate="highway", zero_init_last=False)
    blk = m.layer1[0]
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        carry = float(torch.sigmoid(blk.gate(x)).mean())
    assert carry == pytest.approx(float(torch.sigmoid(torch.tensor(-2.0))), abs=1e-6)
    assert m(torch.randn(2, 3, 16, 16))[-1].isfinite().all()


@pytest.mark.parametrize("norm", ["batch", "group", "none"])
def test_norm_options(norm: str) -> None:
    m = backbones.create("resnet20", norm=norm)
    kinds = {type(x).__name__ for x in m.modules()}
    assert ("BatchNorm2d" in kinds) == (norm == "batch") and ("GroupNorm" in kinds) == (norm == "group")
    assert m(torch.randn(2, 3, 16, 16))[-1].isfinite().all()


def test_resnext_wide_and_se_options() -> None:
    assert backbones.create("resnext50_32x4d").layer1[0].conv2.groups == 32
    assert backbones.create("wide_resnet50_2").layer1[0].conv2.out_channels == 128
    assert backbones.create("se_resnet50").layer1[0].se is not None
    assert backbones.create("resnet18", attention="se").layer4[1].se is not None
    assert backbones.create("resnet50", groups=8, width_per_group=8).layer2[0].conv2.groups == 8


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: backbones.create("resnet5O"), "close matches:"),
        (lambda: backbones.create("resnet50", shortcutt="A"), "valid options:"),
        (lambda: backbones.create("resnet50", shortcut="D"), "choose one of"),
        (lambda: backbones.create("resnet20", drop_path=1.5), "[0, 1)"),
        (lambda: backbones.create("resnet20", residual_scale="1/N"), "'1/L'"),
        (lambda: backbones.create("resnet18", groups=4), "bottleneck"),
        (lambda: backbones.create("resnet18")(torch.randn(3, 32, 32)), "4-D image input"),
        (lambda: backbones.create("resnet18")(torch.randn(1, 1, 32, 32)), "in_channels=1"),
        (lambda: backbones.names("audio"), "modality"),
        (lambda: BlockOptions(gate="highway", shortcut="none"), "gate"),
    ],
)
def test_errors_are_one_line_value_errors(call, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert needle in message and "\n" not in message


def test_register_a_custom_backbone() -> None:
    from backbones.resnet import CifarResNet

    name = "test_custom_resnet14"
    if name not in backbones.names():
        backbones.register(name, "image", block="basic", depth=14)(CifarResNet)
    assert len(backbones.create(name).layer1) == 2
    with pytest.raises(ValueError, match="already registered"):
        backbones.register(name)(CifarResNet)
