"""``backbone.trainable_stages`` and ``backbone.frozen_bn`` on every family, without training."""

import pytest
import torch
from torch import nn

import backbones
from tasks.core.backbone import build_backbone, stage_modules
from tasks.core.config import BackboneConfig
from tasks.core.errors import UserError

FAMILIES = {"resnet20": {}, "resnet18": {"width": 0.25}, "preact_resnet18": {"width": 0.25}, "edsr_tiny": {},
            "quartznet5x5": {"width": 0.125, "kernel_scale": 0.2, "repeat": 1}, "resmlp": {"width": 16},
            "impala_cnn": {}}
INPUTS = {"image": (2, 3, 32, 32), "sequence": (2, 64, 40), "vector": (2, 4)}


def _build(name: str, **fine_tuning) -> backbones.Backbone:
    modality = backbones.entry(name).modality
    channels = INPUTS[modality][1]
    return build_backbone(BackboneConfig(name=name, options=FAMILIES[name], **fine_tuning), modality,
                          in_channels=channels)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_only_the_last_stage_learns_and_frozen_parts_do_not_move(name: str) -> None:
    body = _build(name, trainable_stages=1)
    last = set(stage_modules(body)[-1])
    for key, param in body.named_parameters():
        assert param.requires_grad == (key.split(".")[0] in last), key
    body.train()
    x = torch.randn(INPUTS[backbones.entry(name).modality])
    before = {k: v.clone() for k, v in body.state_dict().items()}
    body(x)[-1].sum().backward()  # a training-mode pass: unfrozen BatchNorms update their statistics
    for key, value in body.state_dict().items():
        if key.split(".")[0] not in last:
            assert torch.equal(value, before[key]), key


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_frozen_bn_and_frozen_backbone(name: str) -> None:
    body = _build(name, frozen_bn=True)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in body.modules())
    assert any(p.requires_grad for p in body.parameters())
    frozen = _build(name, trainable_stages=0)
    assert not any(p.requires_grad for p in frozen.parameters())
    with torch.no_grad():  # frozen BatchNorm of any rank computes what eval-mode BatchNorm does
        reference = _build(name).eval()
        frozen.load_state_dict({k: v for k, v in reference.state_dict().items()
                                if not k.endswith("num_batches_tracked")}, strict=False)
        x = torch.randn(INPUTS[backbones.entry(name).modality])
        assert torch.allclose(frozen.train()(x)[-1], reference(x)[-1], atol=1e-5)


def test_out_of_range_stages_name_the_valid_ones() -> None:
    with pytest.raises(UserError, match=r"trainable_stages=4 .* 3 stages; choose -1 \(all learn\) or 0\.\.3"):
        _build("resnet20", trainable_stages=4)
