"""Adapters: torchvision weights, torchvision detectors on our FPN, SMP encoders."""

import pytest
import torch
import torchvision
from torchvision.models.detection import FasterRCNN, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

import backbones


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_weights_load_strictly_and_match_outputs(name: str, tmp_path) -> None:
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None).eval()
    for m in reference.modules():  # make BN statistics non-trivial
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    path = tmp_path / f"{name}.pth"
    torch.save(reference.state_dict(), path)
    ours = backbones.load_torchvision_weights(backbones.create(name), path).eval()
    x = torch.randn(2, 3, 64, 64)
    trunk = torch.nn.Sequential(*list(reference.children())[:-2])
    with torch.no_grad():
        assert torch.allclose(ours(x)[-1], trunk(x), atol=1e-5)


def test_torchvision_weights_mismatch_is_one_line(tmp_path) -> None:
    state = torchvision.models.resnet18(weights=None).state_dict()
    with pytest.raises(ValueError, match="same depth"):
        backbones.load_torchvision_weights(backbones.create("resnet34"), state)
    with pytest.raises(ValueError, match="does not exist"):
        backbones.load_torchvision_weights(backbones.create("resnet18"), tmp_path / "missing.pth")


def _targets() -> tuple[list[torch.Tensor], list[dict]]:
    images = [torch.rand(3, 96, 96) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[30.0, 20.0, 80.0, 90.0]]), "labels": torch.tensor([2])}]
    return images, targets


def _train_step(model: torch.nn.Module) -> None:
    images, targets = _targets()
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = model(images, targets)
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    opt.step()


def test_faster_rcnn_on_fpn_adapter() -> None:
    body = backbones.adapters.fpn(backbones.create("resnet18"), out_channels=64)
    assert body.out_channels == 64 and body.strides == [8, 16, 32]
    anchors = AnchorGenerator(((16,), (32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 4)
    model = FasterRCNN(body, num_classes=3, rpn_anchor_generator=anchors, min_size=96, max_size=96)
    _train_step(model)
    model.eval()
    with torch.no_grad():
        assert {"boxes", "labels", "scores"} <= set(model([torch.rand(3, 96, 96)])[0])


def test_retinanet_on_fpn_adapter() -> None:
    body = backbones.adapters.fpn(backbones.create("resnet18"), out_channels=64,
                                  returned_stages=[1, 2, 3], extra_blocks=LastLevelP6P7(64, 64))
    anchors = AnchorGenerator(tuple((s, s * 5 // 4, s * 3 // 2) for s in (16, 32, 64, 128, 256)),
                              ((0.5, 1.0, 2.0),) * 5)
    _train_step(RetinaNet(body, num_classes=3, anchor_generator=anchors, min_size=96, max_size=96))


def test_fpn_rejects_non_image_backbone() -> None:
    with pytest.raises(ValueError, match="image backbone"):
        backbones.adapters.fpn(backbones.create("resmlp"))


@pytest.mark.parametrize("arch", ["Unet", "FPN"])
def test_smp_models_on_our_encoders(arch: str) -> None:
    smp = pytest.importorskip("segmentation_models_pytorch")
    names = backbones.adapters.register_smp_encoders()
    assert "rs-resnet34" in names and "rs-resnet20" not in names
    model = getattr(smp, arch)(encoder_name="rs-resnet34", encoder_weights=None, in_channels=1, classes=4)
    y = model(torch.randn(2, 1, 64, 64))
    assert y.shape == (2, 4, 64, 64)
    y.mean().backward()
    assert model.encoder.model.conv1.weight.grad is not None


def test_classifier_head_pools_any_modality() -> None:
    from backbones.adapters import Classifier

    assert Classifier(backbones.create("resnet20"), 7)(torch.randn(2, 3, 16, 16)).shape == (2, 7)
    assert Classifier(backbones.create("quartznet_small", in_channels=16), 5)(torch.randn(2, 16, 30)).shape == (2, 5)
    assert Classifier(backbones.create("resmlp", in_channels=4), 2)(torch.randn(3, 4)).shape == (3, 2)


def test_gradients_equal_torchvision_with_the_same_weights() -> None:
    # In-place ReLU and residual add must not change the backward pass.
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None)
    ours = backbones.load_torchvision_weights(backbones.create("resnet18"), reference.state_dict())
    x = torch.randn(2, 3, 64, 64)
    trunk = torch.nn.Sequential(*list(reference.children())[:-2])
    trunk(x).pow(2).mean().backward()
    ours(x)[-1].pow(2).mean().backward()
    theirs = dict(reference.named_parameters())
    for name, p in ours.named_parameters():
        assert torch.allclose(p.grad, theirs[name].grad, atol=1e-6, rtol=1e-4), name
