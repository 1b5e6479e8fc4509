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


def _targets(size: int = 96) -> tuple[list[torch.Tensor], list[dict]]:
    images = [torch.rand(3, size, size) for _ in range(2)]
    targets = [{"boxes": torch.tensor([[10.0, 12.0, 50.0, 60.0]]), "labels": torch.tensor([1])},
               {"boxes": torch.tensor([[30.0, 20.0, 80.0, 90.0]]), "labels": torch.tensor([2])}]
    return images, targets


def _train_step(model: torch.nn.Module, size: int = 96) -> None:
    images, targets = _targets(size)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    losses = model(images, targets)
    loss = sum(losses.values())
    assert torch.isfinite(loss)
    loss.backward()
    opt.step()


def test_faster_rcnn_on_fpn_adapter_with_own_anchors() -> None:
    body = backbones.adapters.fpn(backbones.create("resnet18"), out_channels=64, returned_stages=[1, 2, 3])
    assert body.out_channels == 64 and body.strides == [8, 16, 32] and body.num_levels == 4
    anchors = AnchorGenerator(((16,), (32,), (64,), (128,)), ((0.5, 1.0, 2.0),) * 4)
    model = FasterRCNN(body, num_classes=3, rpn_anchor_generator=anchors, min_size=96, max_size=96)
    _train_step(model)
    model.eval()
    with torch.no_grad():
        assert {"boxes", "labels", "scores"} <= set(model([torch.rand(3, 96, 96)])[0])


def test_fpn_default_levels_fit_torchvision_default_anchors() -> None:
    # FasterRCNN's default anchors: 5 sizes (32..512), RoIAlign on maps "0".."3".
    x = torch.randn(1, 3, 128, 128)
    faster = backbones.adapters.fpn(backbones.create("resnet18"))
    assert faster.returned_stages == [0, 1, 2, 3] and faster.strides == [4, 8, 16, 32] and faster.num_levels == 5
    with torch.no_grad():
        maps = faster(x)
    assert list(maps) == ["0", "1", "2", "3", "pool"]
    assert [128 // m.shape[-1] for m in maps.values()] == [4, 8, 16, 32, 64]
    # RetinaNet's: 5 sizes (32..512, three scales each) on stages 1..3 + P6, P7.
    retina = backbones.adapters.fpn(backbones.create("resnet18"), extra_blocks="p6p7")
    assert retina.returned_stages == [1, 2, 3] and retina.num_levels == 5
    with torch.no_grad():
        maps = retina(x)
    assert list(maps) == ["1", "2", "3", "p6", "p7"]
    assert [128 // m.shape[-1] for m in maps.values()] == [8, 16, 32, 64, 128]


def test_faster_rcnn_with_torchvision_default_anchors() -> None:
    torch.manual_seed(0)
    # Default anchors; fewer proposals than COCO's 2000 only to keep the CPU step short.
    model = FasterRCNN(backbones.adapters.fpn(backbones.create("resnet18")), num_classes=3,
                       min_size=128, max_size=128, rpn_pre_nms_top_n_train=200, rpn_post_nms_top_n_train=100,
                       box_batch_size_per_image=64)
    assert len(model.rpn.anchor_generator.sizes) == 5  # torchvision's default: 32, 64, 128, 256, 512
    _train_step(model, size=128)


def test_retinanet_with_torchvision_default_anchors() -> None:
    torch.manual_seed(0)
    model = RetinaNet(backbones.adapters.fpn(backbones.create("resnet18"), extra_blocks="p6p7"), num_classes=3,
                      min_size=128, max_size=128)
    assert len(model.anchor_generator.sizes) == 5  # torchvision's default: 32..512, three scales each
    _train_step(model, size=128)


def test_fpn_rejects_bad_levels() -> None:
    with pytest.raises(ValueError, match="extra_blocks"):
        backbones.adapters.fpn(backbones.create("resnet18"), extra_blocks="p6")
    with pytest.raises(ValueError, match="returned_stages"):
        backbones.adapters.fpn(backbones.create("resnet18"), returned_stages=[3, 1])


def test_retinanet_on_fpn_adapter() -> None:
    body = backbones.adapters.fpn(backbones.create("resnet18"), out_channels=64,
                                  returned_stages=[1, 2, 3], extra_blocks=LastLevelP6P7(64, 64))
    anchors = AnchorGenerator(tuple((s, s * 5 // 4, s * 3 // 2) for s in (16, 32, 64, 128, 256)),
                              ((0.5, 1.0, 2.0),) * 5)
    _train_step(RetinaNet(body, num_classes=3, anchor_generator=anchors, min_size=96, max_size=96))


def test_fpn_rejects_non_image_backbone() -> None:
    with pytest.raises(ValueError, match="image backbone"):
        backbones.adapters.fpn(backbones.create("resmlp"))


@pytest.mark.parametrize("arch", ["Unet", "FPN", "DeepLabV3Plus"])  # DeepLabV3+ dilates stage 3 (output stride 16)
def test_smp_models_on_our_encoders(arch: str) -> None:
    smp = pytest.importorskip("segmentation_models_pytorch")
    names = backbones.adapters.register_smp_encoders()
    assert "rs-resnet34" in names and "rs-resnet20" not in names
    model = getattr(smp, arch)(encoder_name="rs-resnet34", encoder_weights=None, in_channels=1, classes=4)
    assert model.encoder.model.in_channels == 1  # rebuilt for 1 channel, not patched
    y = model(torch.randn(2, 1, 64, 64))
    assert y.shape == (2, 4, 64, 64)
    y.mean().backward()
    assert model.encoder.model.conv1.weight.grad is not None


@pytest.mark.parametrize("depth", [1, 3, 5])
def test_smp_encoder_levels_follow_the_contract(depth: int) -> None:
    pytest.importorskip("segmentation_models_pytorch")
    from backbones.adapters.smp import ResidualEncoder

    encoder = ResidualEncoder("resnet18", depth=depth).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = encoder(x)
    assert len(maps) == depth + 1 and maps[0] is x
    assert [m.shape[1] for m in maps] == list(encoder.out_channels) == [3, 64, 64, 128, 256, 512][: depth + 1]
    assert [64 // m.shape[-1] for m in maps] == [2**i for i in range(depth + 1)]


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
