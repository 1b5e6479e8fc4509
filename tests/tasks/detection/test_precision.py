"""Detection under mixed precision, DDP and compile: fp32 box arithmetic, unused stages, compile scope."""

import pytest
import torch
from torchvision.models.detection._utils import BoxCoder

from tasks.core.config import load_config
from tasks.core.device import autocast_dtype
from tasks.detection.config import DetectionConfig
from tasks.detection.model import MixedPrecisionFPN, build_model
from tasks.detection.task import TASK

INFO = {"num_classes": 3, "classes": ["__background__", "a", "b"], "image_size": 0, "dataset": "coco"}


def _model(*overrides: str) -> torch.nn.Module:
    cfg = load_config(DetectionConfig, overrides=["backbone.name=resnet18", "model.fpn_channels=32",
                                                  "model.proposals=64", *overrides])
    torch.manual_seed(0)
    return build_model(cfg, INFO)


def test_bf16_box_decoding_snaps_large_coordinates_to_a_grid() -> None:
    """The defect the fix avoids: torchvision decodes in the head output's dtype, and bf16 keeps 8 bits."""
    coder = BoxCoder((1.0, 1.0, 1.0, 1.0))
    x = torch.linspace(600.0, 1300.0, 200)  # anchors across a 1333 x 800 image
    anchors = torch.stack([x, x * 0.5, x + 27.3, x * 0.5 + 31.7], 1)
    deltas = torch.randn(200, 4, generator=torch.Generator().manual_seed(0)) * 0.1
    exact = coder.decode_single(deltas.double(), anchors.double())
    fp32 = coder.decode_single(deltas, anchors)
    bf16 = coder.decode_single(deltas.bfloat16(), anchors.bfloat16()).double()
    assert (fp32.double() - exact).abs().max() < 1e-3
    assert (bf16 - exact).abs().max() >= 2.0  # 4-px steps above 512 px, 8-px steps above 1024 px


def test_boxes_decode_in_fp32_while_the_backbone_runs_in_bf16(monkeypatch) -> None:
    """At 1333 x 800 with trainer.precision=bf16 (CPU autocast stands in for CUDA's), every box decode
    sees fp32 inputs and coordinates beyond 1024 px; autocasting the whole detector would not."""
    seen: list[tuple[torch.dtype, torch.dtype, float]] = []
    original = BoxCoder.decode_single

    def spy(self: BoxCoder, rel_codes: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        seen.append((rel_codes.dtype, boxes.dtype, float(boxes.max())))
        return original(self, rel_codes, boxes)

    monkeypatch.setattr(BoxCoder, "decode_single", spy)
    model = _model("trainer.precision=bf16", "model.min_size=800", "model.max_size=1333").eval()
    assert autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    image = torch.rand(3, 800, 1333, generator=torch.Generator().manual_seed(1))
    features: list[torch.dtype] = []
    model.backbone.fpn.register_forward_hook(lambda m, i, out: features.append(next(iter(out.values())).dtype))
    with torch.no_grad():
        out = model([image])[0]
    assert features and features[0] is torch.bfloat16  # the backbone did run in bf16
    assert seen and all(r is torch.float32 and b is torch.float32 for r, b, _ in seen)
    assert max(m for _, _, m in seen) > 1024  # the coordinates where bf16 would be off by 8 px
    assert out["boxes"].dtype is torch.float32
    seen.clear()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # what the engine used to do
        model([image])
    assert any(r is torch.bfloat16 for r, _, _ in seen)


def test_unreached_stages_do_not_learn_so_ddp_needs_no_unused_parameter_search() -> None:
    model = _model("model.returned_stages=[0,1]")
    body = model.backbone.body
    frozen = {n for n, p in body.named_parameters() if not p.requires_grad}
    assert {n.split(".")[0] for n in frozen} == {"layer3", "layer4"}  # stages 2 and 3 never run
    model.train()
    images = [torch.rand(3, 64, 64), torch.rand(3, 64, 64)]
    targets = [{"boxes": torch.tensor([[4.0, 4.0, 30.0, 30.0]]), "labels": torch.tensor([1])}] * 2
    sum(model(images, targets).values()).backward()
    # DDP's condition: every parameter that requires a gradient receives one
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert all(p.grad is None for n, p in body.named_parameters() if n in frozen)


def test_compile_covers_backbone_and_fpn_only_and_keeps_checkpoint_keys() -> None:
    model = _model()
    keys = list(model.state_dict())
    returned = TASK.compile(model, model, load_config(DetectionConfig))
    assert returned is model  # the detector itself (lists of images, NMS) stays eager
    assert model.backbone._compiled_call_impl is not None and model.rpn._compiled_call_impl is None
    assert list(model.state_dict()) == keys


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fpn_hands_the_heads_fp32_nchw_maps(precision: str) -> None:
    model = _model(f"trainer.precision={precision}")
    TASK.to_channels_last(model)
    fpn = model.backbone
    assert isinstance(fpn, MixedPrecisionFPN) and fpn.channels_last
    assert fpn.body.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert not any(p.dim() == 4 and not p.is_contiguous() for p in model.rpn.parameters())  # heads stay NCHW
    with torch.no_grad():
        maps = fpn(torch.rand(2, 3, 64, 64))
    assert all(m.dtype is torch.float32 and m.is_contiguous() for m in maps.values())


def test_compiled_backbone_and_fpn_trace_in_one_graph_without_breaks() -> None:
    import torch._dynamo
    from torch._dynamo.utils import counters

    model = _model("trainer.precision=bf16").eval()
    torch._dynamo.reset()
    counters.clear()
    model.backbone.resolve(torch.device("cpu"))
    model.backbone.compile(backend="eager")  # dynamo's tracing without inductor's code generation
    with torch.no_grad():
        maps = model.backbone(torch.rand(1, 3, 64, 64))
    assert all(m.dtype is torch.float32 for m in maps.values())
    assert sum(counters["graph_break"].values()) == 0 and counters["stats"]["unique_graphs"] == 1
    torch._dynamo.reset()
