"""CUDA paths of the engine (bf16 autocast, channels-last, torch.compile); skipped without a GPU."""

import pytest
import torch

import backbones
import tasks
from tasks.classification.task import TASK
from tasks.core.checkpoint import load_checkpoint

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("compile_model", [False, True])
def test_cuda_training_bf16_channels_last(tiny_cls, compile_model) -> None:
    run = tasks.train(TASK, [*tiny_cls, "trainer.device=cuda", f"trainer.compile={str(compile_model).lower()}",
                            f"trainer.run_name=gpu{int(compile_model)}"]).dir
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 8
    assert 0 <= tasks.evaluate(run, "cuda")["top1"] <= 1


def test_backbone_forward_backward_on_cuda() -> None:
    model = backbones.create("resnet50").cuda().to(memory_format=torch.channels_last)
    x = torch.randn(4, 3, 64, 64, device="cuda").to(memory_format=torch.channels_last)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        feats = model(x)
    sum(f.float().mean() for f in feats).backward()
    assert all(torch.isfinite(f).all() for f in feats)
