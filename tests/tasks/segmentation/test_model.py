"""Segmentation models and losses: SMP architectures on rs- encoders, the plain twin, losses, sliding windows."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from backbones.adapters.smp import encoder_name
from backbones.blocks import ResidualBlock
from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.segmentation.config import SegmentationConfig
from tasks.segmentation.model import ARCHS, build_loss, build_model, input_multiple
from tasks.segmentation.predict import sliding_window, whole

THIN = ["backbone.options.width=0.25"]


def _cfg(*overrides: str) -> SegmentationConfig:
    return load_config(SegmentationConfig, None, list(overrides))


def test_every_listed_architecture_builds_on_an_rs_encoder() -> None:
    expected = {"unet", "unetplusplus", "fpn", "deeplabv3plus", "pspnet", "linknet", "manet", "pan", "upernet"}
    assert expected <= set(ARCHS)
    for arch in ("unet", "pspnet", "deeplabv3plus"):
        model = build_model(_cfg(f"model.arch={arch}", *THIN), {"num_classes": 4})
        assert model.encoder.model.feature_info[-1].channels == 128  # our resnet18 at width 0.25
        assert model(torch.randn(2, 3, 64, 64)).shape == (2, 4, 64, 64)


def test_output_stride_sets_dilation_and_the_padding_multiple() -> None:
    assert input_multiple(_cfg().model) == 32
    assert input_multiple(_cfg("model.arch=deeplabv3plus").model) == 16  # SMP's default for DeepLabV3+
    cfg = _cfg("model.arch=deeplabv3plus", "model.output_stride=8", *THIN)
    assert input_multiple(cfg.model) == 8
    model = build_model(cfg, {"num_classes": 3}).eval()
    with torch.no_grad():
        assert model.encoder(torch.randn(1, 3, 64, 64))[-1].shape[-1] == 8  # 64 / 8
    with pytest.raises(UserError, match=r"model\.output_stride=16: model\.arch=unet has no dilated encoder"):
        input_multiple(_cfg("model.output_stride=16").model)
    with pytest.raises(UserError, match=r"model\.arch='segnet' is not valid; choose one of: unet"):
        input_multiple(_cfg("model.arch=segnet").model)


def test_plain_twin_has_the_same_layers_and_no_shortcuts() -> None:
    residual = build_model(_cfg(*THIN), {"num_classes": 3})
    plain = build_model(_cfg("backbone.shortcut=none", *THIN), {"num_classes": 3})
    assert encoder_name("resnet18", shortcut="none", width=0.25) == "rs-resnet18[shortcut=none,width=0.25]"
    assert residual.state_dict().keys() - plain.state_dict().keys() <= {
        k for k in residual.state_dict() if ".shortcut." in k or ".downsample." in k}
    blocks = [m for m in plain.encoder.modules() if isinstance(m, ResidualBlock)]
    assert blocks and not any(b.opts.residual for b in blocks)
    assert all(b.opts.residual for b in residual.encoder.modules() if isinstance(b, ResidualBlock))
    with pytest.raises(UserError, match=r"backbone\.name='quartznet_small' is a sequence backbone"):
        build_model(_cfg("backbone.name=quartznet_small"), {"num_classes": 3})


def test_frozen_stages_apply_to_the_encoder() -> None:
    model = build_model(_cfg("backbone.trainable_stages=1", *THIN), {"num_classes": 3})
    body = model.encoder.model
    assert not body.conv1.weight.requires_grad and not body.layer3[0].conv1.weight.requires_grad
    assert body.layer4[0].conv1.weight.requires_grad and model.decoder.parameters().__next__().requires_grad


def test_losses_combine_with_weights_and_ignore_the_ignore_index() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 8, 8)
    target = torch.randint(0, 4, (2, 8, 8))
    target[:, :3] = 255
    changed = logits.clone()
    changed[:, :, :3] = torch.randn(2, 4, 3, 8) * 10  # only the ignored pixels differ
    for name in ("ce", "dice", "focal", "lovasz", "jaccard"):
        criterion = build_loss(name, 255)
        value = criterion(logits, target)[0]
        assert torch.isfinite(value) and value > 0, name
        assert torch.allclose(value, criterion(changed, target)[0], atol=1e-6), name
    total, parts = build_loss("ce+0.5*dice", 255)(logits, target)
    assert set(parts) == {"ce", "dice"} and torch.allclose(total, parts["ce"] + 0.5 * parts["dice"])
    for bad in ("ce+dicee", "ce+ce", "2*", "ce-dice"):
        with pytest.raises(UserError, match=r"model\.loss="):
            build_loss(bad, 255)


def test_sliding_windows_equal_whole_image_inference() -> None:
    torch.manual_seed(0)
    pixelwise = nn.Conv2d(3, 5, 1)  # translation-equivariant: every window sees the same per-pixel answer
    x = torch.randn(3, 100, 70)
    with torch.no_grad():
        reference = pixelwise(x[None])[0]
        assert torch.allclose(sliding_window(pixelwise, x, 32, 16), reference, atol=1e-5)  # 100x70 in 32-px windows
        model = build_model(_cfg(*THIN), {"num_classes": 3}).eval()
        small = torch.randn(3, 45, 61)  # fits one window: exactly whole-image inference
        assert torch.equal(sliding_window(model, small, 512, 32), whole(model, small, 32))
        tiled = sliding_window(model, torch.randn(3, 150, 90), 64, 32)
    assert tiled.shape == (3, 150, 90) and torch.isfinite(tiled).all()
