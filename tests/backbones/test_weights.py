"""Loading state dicts into backbones: strict keys, heads dropped, prefixes found, first conv adapted."""

import pytest
import timm
import torch
import torchvision

import backbones
from backbones.weights import adapt_input_conv, first_conv


def test_adapted_first_conv_answers_gray_inputs_as_the_original() -> None:
    torch.manual_seed(0)
    rgb = torch.nn.Conv2d(3, 8, 3, bias=False)
    gray = torch.rand(2, 1, 12, 12)
    summed, how = adapt_input_conv(rgb.weight.detach(), 1)
    assert summed.shape == (8, 1, 3, 3) and "summed" in how
    # a gray image given to the RGB conv as three equal channels = the summed conv on the gray image
    assert torch.allclose(torch.nn.functional.conv2d(gray, summed), rgb(gray.expand(-1, 3, -1, -1)), atol=1e-5)
    one = torch.nn.Conv2d(1, 8, 3, bias=False)
    tiled, how = adapt_input_conv(one.weight.detach(), 3)
    assert tiled.shape == (8, 3, 3, 3) and "scaled by 1/3" in how
    # an RGB image of equal channels through the tiled conv = the gray conv on one channel
    assert torch.allclose(torch.nn.functional.conv2d(gray.expand(-1, 3, -1, -1), tiled), one(gray), atol=1e-5)
    five, _ = adapt_input_conv(rgb.weight.detach(), 5)
    assert five.shape == (8, 5, 3, 3) and torch.allclose(five[:, 3:], rgb.weight[:, :2] * 3 / 5)
    assert adapt_input_conv(rgb.weight.detach(), 3)[1] == ""


def test_timm_resnet_loads_and_gives_timm_features() -> None:
    torch.manual_seed(0)
    reference = timm.create_model("resnet18", pretrained=False).eval()
    wrapped = {f"module.{k}": v for k, v in reference.state_dict().items()}  # as DDP training saves it
    ours = backbones.create("resnet18").eval()
    report = backbones.load_backbone_weights(ours, wrapped)
    assert report.prefix == "module" and report.dropped == ["module.fc.weight", "module.fc.bias"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x)[-1], reference.forward_features(x), atol=1e-5)


def test_backbone_found_under_a_prefix_and_input_channels_adapted() -> None:
    source = backbones.adapters.Classifier(backbones.create("resnet18", width=0.25, in_channels=1), 10)
    target = backbones.create("resnet18", width=0.25)
    report = backbones.load_backbone_weights(target, source.state_dict())
    assert report.prefix == "backbone" and report.dropped == ["fc.weight", "fc.bias"]
    assert report.adapted.startswith("conv1.weight (repeated 1 input channels to 3")
    assert torch.allclose(target.conv1.weight, source.backbone.conv1.weight.repeat(1, 3, 1, 1) / 3)
    assert torch.equal(target.layer4[1].conv2.weight, source.backbone.layer4[1].conv2.weight)
    assert first_conv(backbones.create("quartznet5x5", width=0.125)) is not None


def test_mismatch_is_one_line_naming_keys_and_shapes() -> None:
    state = torchvision.models.resnet18(weights=None).state_dict()
    with pytest.raises(ValueError, match=r"missing layer1\.2\.conv1\.weight \(64, 64, 3, 3\)") as err:
        backbones.load_backbone_weights(backbones.create("resnet34"), state)
    assert "\n" not in str(err.value)
    shapes = r"shape conv1\.weight \(64, 3, 7, 7\) vs \(32, 3, 7, 7\), bn1\.weight \(64,\) vs \(32,\)"
    with pytest.raises(ValueError, match=shapes):
        backbones.load_backbone_weights(backbones.create("resnet18", width=0.5), state)
    deep_stem = timm.create_model("resnet18d", pretrained=False).state_dict()
    with pytest.raises(ValueError, match=r"unexpected conv1\.0\.weight"):
        backbones.load_backbone_weights(backbones.create("resnet18"), deep_stem)
