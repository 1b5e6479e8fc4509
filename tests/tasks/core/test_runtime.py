"""What the GPU path relies on, checked on the CPU: seeding, host syncs, precision, layouts, setup.

No test here needs a GPU; the CUDA-only behaviour (SyncBatchNorm, fp16 fallback) is checked
through the functions that decide it.
"""

import json

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

import tasks
from tasks.classification.task import TASK
from tasks.core import device as device_mod
from tasks.core import distributed
from tasks.core.engine import Trainer, sync_batch_norm
from tasks.core.errors import UserError
from tasks.core.loader import ShuffledBatchSampler, make_loader
from tasks.core.runlog import read_jsonl
from tasks.core.supervised import SupervisedTask


class Draws(Dataset):
    """Sample ``i`` is ``(i, an augmentation draw from torch's generator)``."""

    def __len__(self) -> int:
        return 48

    def __getitem__(self, i: int) -> tuple[int, float]:
        return i, float(torch.rand(()))


def _epoch(batch: int, rank: int = 0, world: int = 1, start: int = 0, workers: int = 0) -> list[list[tuple]]:
    sampler = ShuffledBatchSampler(48, batch, seed=3, rank=rank, world_size=world)
    sampler.set_epoch(2, start)
    loader = make_loader(Draws(), batch, batch_sampler=sampler, num_workers=workers, seed=3, rank=rank,
                         collate_fn=list)
    return [list(b) for b in loader]


def test_augmentation_is_seeded_per_sample_so_ranks_differ_and_match_one_process() -> None:
    whole = _epoch(8)
    ranks = [_epoch(4, rank, 2) for rank in (0, 1)]
    for global_batch, a, b in zip(whole, *ranks):
        assert sorted(a + b) == sorted(global_batch)  # index and draw: 2 ranks augment exactly as 1 process
        assert {d for _, d in a}.isdisjoint({d for _, d in b})  # the ranks draw different numbers
    assert _epoch(8) == whole


def test_resume_mid_epoch_with_workers_sees_the_same_augmentations() -> None:
    whole = _epoch(8)
    assert _epoch(8, start=3, workers=2) == whole[3:]


def test_loading_in_the_main_process_leaves_its_random_stream_alone() -> None:
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    _epoch(8)
    assert torch.equal(torch.rand(3), expected)  # dropout & co. draw what they would without the loader


def test_training_steps_never_read_device_values(tiny_cls, monkeypatch) -> None:
    """No ``float()``, ``bool()``, ``.item()`` or ``.tolist()`` on a tensor inside the step (each is a
    host sync on CUDA); values are read at ``log_every`` only."""
    reads: list[str] = []
    inside = [False]
    for name in ("__float__", "__bool__", "__int__", "item", "tolist"):
        original = getattr(torch.Tensor, name)

        def spy(self, *args, _name=name, _original=original):
            if inside[0]:
                reads.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, name, spy)
    step = Trainer._train_step

    def watched(self, batch):
        inside[0] = True
        try:
            return step(self, batch)
        finally:
            inside[0] = False

    monkeypatch.setattr(Trainer, "_train_step", watched)
    tasks.train(TASK, [*tiny_cls, "trainer.log_every=4", "optim.grad_clip=1.0", "trainer.ema_decay=0.9"])
    assert reads == []


def test_in_training_and_rsuite_evaluate_metrics_agree_in_the_run_precision(tiny_cls) -> None:
    run = tasks.train(TASK, [*tiny_cls, "trainer.precision=bf16", "trainer.max_steps=4"]).dir
    logged = read_jsonl(run / "metrics.jsonl")[-1]
    again = tasks.evaluate(run, "cpu")
    assert again["loss"] == logged["val/loss"] and again["top1"] == logged["val/top1"]


def test_start_line_and_run_json_name_device_precision_world_and_compile(tiny_cls, capsys) -> None:
    run = tasks.train(TASK, [*tiny_cls, "trainer.progress=true"]).dir
    runtime = json.loads((run / "run.json").read_text())["runtime"]
    assert {k: runtime[k] for k in ("device", "precision", "world_size", "compile", "num_workers")} == \
        {"device": "cpu", "precision": "fp32", "world_size": 1, "compile": "off", "num_workers": 0}
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("classification: cpu | fp32 |")]
    assert len(lines) == 1 and "1 process | compile off" in lines[0]
    train = read_jsonl(run / "train.jsonl")
    assert all(r["samples_per_s"] > 0 and 0 <= r["loader_wait"] <= 1 for r in train)


def test_auto_precision_is_fp16_on_gpus_without_native_bf16(monkeypatch) -> None:
    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: not including_emulation)
    assert device_mod.autocast_dtype("auto", cuda) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert device_mod.autocast_dtype("auto", cuda) is torch.float16  # emulated bf16 does not count
    with pytest.raises(UserError, match="no native bf16"):
        device_mod.autocast_dtype("bf16", cuda)
    assert device_mod.autocast_dtype("auto", torch.device("cpu")) is None


def test_loader_workers_default_to_the_cores_per_local_rank_on_cuda(monkeypatch) -> None:
    monkeypatch.setattr(device_mod, "cpu_count", lambda: 16)
    cuda = torch.device("cuda", 0)
    assert device_mod.loader_workers(-1, cuda, 1) == 8 and device_mod.loader_workers(-1, cuda, 4) == 4
    assert device_mod.loader_workers(-1, torch.device("cpu")) == 0 and device_mod.loader_workers(3, cuda) == 3


def test_sync_bn_converts_batch_norms_on_gpus_and_is_refused_on_cpu() -> None:
    from torchvision.ops.misc import FrozenBatchNorm2d

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), FrozenBatchNorm2d(4))
    converted = sync_batch_norm(model, torch.device("cuda", 0))  # module surgery only: no GPU touched
    assert isinstance(converted[1], nn.SyncBatchNorm) and isinstance(converted[2], FrozenBatchNorm2d)
    with pytest.raises(UserError, match=r"trainer\.sync_bn=true needs CUDA"):
        sync_batch_norm(model, torch.device("cpu"))


def test_process_group_gets_an_explicit_timeout(monkeypatch) -> None:
    calls = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: False)
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda **kw: calls.update(kw))
    info = distributed.setup("cpu", timeout_s=1234)
    assert info.rank == 1 and info.world_size == 2
    assert calls["backend"] == "gloo" and calls["timeout"].total_seconds() == 1234


def test_inputs_follow_the_channels_last_model_and_the_classifier_pools_without_copies() -> None:
    task = SupervisedTask()
    images, labels = task.to_device((torch.rand(2, 3, 8, 8), torch.tensor([1, 0])), torch.device("cpu"),
                                    channels_last=True)
    assert images.is_contiguous(memory_format=torch.channels_last) and labels.dtype is torch.int64
    import backbones
    from backbones.adapters import Classifier

    model = Classifier(backbones.create("resnet20", width=0.25), 10).to(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    assert torch.allclose(model(x), model(x.contiguous()), atol=1e-5)


def test_speech_batches_pad_to_a_multiple_of_32_frames() -> None:
    from tasks.speech.data import PAD_FRAMES, collate

    batch = [(torch.rand(4, 70), torch.tensor([1, 2])), (torch.rand(4, 33), torch.tensor([3]))]
    feats, frames, _, _ = collate(batch)
    assert feats.shape == (2, 4, 96) and PAD_FRAMES == 32 and frames.tolist() == [70, 33]
    assert feats[1, :, 33:].abs().sum() == 0


@pytest.mark.parametrize("override", ["trainer.precision=bf16", "trainer.compile=true"])
def test_dqn_rejects_precision_and_compile_it_would_ignore(override: str) -> None:
    from tasks.core.config import load_config
    from tasks.dqn.task import TASK as DQN

    cfg = load_config(DQN.config_class, DQN.recipe_path(), [override])
    with pytest.raises(UserError, match="not supported by DQN"):
        DQN.check(cfg)
