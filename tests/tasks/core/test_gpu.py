"""CUDA paths of the engine (bf16 autocast, channels-last, torch.compile); skipped without a GPU."""

import json

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


def test_training_steps_do_not_sync_with_the_host(tiny_cls, monkeypatch) -> None:
    """CUDA's sync debug mode turns any device-to-host wait inside the step into an error."""
    from tasks.core.engine import Trainer

    step = Trainer._train_step

    def strict(self, batch):
        torch.cuda.set_sync_debug_mode("error")
        try:
            return step(self, batch)
        finally:
            torch.cuda.set_sync_debug_mode("default")

    monkeypatch.setattr(Trainer, "_train_step", strict)
    tasks.train(TASK, [*tiny_cls, "trainer.device=cuda", "trainer.ema_decay=0.9", "optim.grad_clip=1.0",
                       "trainer.run_name=nosync"])


def test_detection_trains_on_cuda_with_a_compiled_channels_last_backbone(tmp_path) -> None:
    from tasks.detection.task import TASK as DET

    run = tasks.train(DET, ["data.num_train=16", "data.num_val=8", "data.image_size=64", "data.batch_size=4",
                            "model.fpn_channels=32", "trainer.device=cuda", "trainer.compile=true",
                            "trainer.max_steps=4", "trainer.eval_every=4", "trainer.progress=false",
                            f"trainer.runs_dir={tmp_path}", "trainer.run_name=det"])
    assert 0 <= run.metrics["map_50"] <= 1
    runtime = json.loads((run.dir / "run.json").read_text())["runtime"]
    assert runtime["compile"] == "backbone+FPN" and runtime["channels_last"] and runtime["precision"].startswith("bf16")
