"""``backbone.weights`` from files and run folders, ``trainable_stages``/``frozen_bn``, ``backbone_lr_scale``."""

import json
import pickle

import pytest
import timm
import torch
import torchvision
from safetensors.torch import save_file

import backbones
import tasks
from tasks.classification.config import ClassificationConfig
from tasks.classification.model import build_model as classifier
from tasks.core.checkpoint import load_checkpoint
from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.core.optim import build_optimizer
from tasks.core.weights import load_pretrained

SMALL = ["backbone.name=resnet18", "backbone.options.width=0.25"]  # an ImageNet-style net, CPU-sized


def _model(overrides: list[str], in_channels: int = 1) -> tuple[torch.nn.Module, ClassificationConfig]:
    cfg = load_config(ClassificationConfig, None, overrides)
    return classifier(cfg, {"in_channels": in_channels, "num_classes": 10}), cfg


@pytest.mark.parametrize("kind", ["torchvision", "timm", "safetensors"])
def test_weights_files_load_strictly_with_the_gray_conv_adapted(kind, tmp_path) -> None:
    torch.manual_seed(0)
    if kind == "timm":  # timm's train.py checkpoint: {"state_dict": ..., "epoch": ...}
        source = timm.create_model("resnet18", pretrained=False).state_dict()
        path = tmp_path / "timm.pth.tar"
        torch.save({"state_dict": source, "epoch": 3, "arch": "resnet18"}, path)
    else:
        source = torchvision.models.resnet18(weights=None).state_dict()
        path = tmp_path / ("tv.safetensors" if kind == "safetensors" else "tv.pth")
        save_file(source, path) if kind == "safetensors" else torch.save(source, path)
    model, cfg = _model(["backbone.name=resnet18", f"backbone.weights={path}"])
    record = load_pretrained(model, cfg.backbone)
    body = model.backbone
    assert torch.equal(body.layer3[1].conv2.weight, source["layer3.1.conv2.weight"])
    assert torch.equal(body.bn1.running_var, source["bn1.running_var"])
    assert torch.allclose(body.conv1.weight, source["conv1.weight"].sum(1, keepdim=True))  # Fashion-MNIST is gray
    assert record["format"] == ("safetensors" if kind == "safetensors" else "state_dict")
    assert record["dropped"] == 2 and record["adapted"].startswith("conv1.weight (summed 3")
    assert len(record["sha256"]) == 64 and record["source"] == str(path.resolve())


def test_a_classification_run_starts_a_frozen_detection_backbone(tiny_cls, tmp_path, monkeypatch) -> None:
    """The cross-domain move: gray Fashion-MNIST classifier -> RGB detector; frozen, it stays identical."""
    monkeypatch.setenv("RSUITE_CACHE", str(tmp_path / "cache"))
    source = tasks.train("classification", [*tiny_cls, *SMALL, "trainer.max_steps=2", "trainer.eval_every=2"]).dir
    run = tasks.train("detection", [
        *SMALL, f"backbone.weights={source}", "backbone.trainable_stages=0", "model.fpn_channels=32",
        "data.num_train=8", "data.num_val=4", "data.image_size=64", "data.batch_size=4", "data.min_object_size=12",
        "data.max_object_size=24", "trainer.max_steps=2", "trainer.eval_every=2", "trainer.progress=false",
        "trainer.threads=1", f"trainer.runs_dir={tmp_path / 'det'}", "trainer.run_name=d"]).dir
    record = json.loads((run / "run.json").read_text())["weights"]
    assert record["format"] == "run" and record["task"] == "classification" and record["backbone"] == "resnet18"
    assert record["prefix"] == "backbone" and "repeated 1 input channels to 3" in record["adapted"]
    trained = load_checkpoint(source / "checkpoints" / "best.pt")["model"]
    detector = load_checkpoint(run / "checkpoints" / "last.pt")["model"]
    for key in ("layer1.0.conv1.weight", "layer4.1.bn2.running_mean", "layer4.1.bn2.weight"):
        assert torch.equal(detector[f"backbone.body.{key}"], trained[f"backbone.{key}"]), key
    adapted = trained["backbone.conv1.weight"].repeat(1, 3, 1, 1) / 3
    assert torch.allclose(detector["backbone.body.conv1.weight"], adapted)


def test_only_the_last_stages_learn(tiny_cls, tmp_path) -> None:
    start = backbones.create("resnet18", width=0.25, in_channels=1).state_dict()
    torch.save(start, tmp_path / "start.pth")
    run = tasks.train("classification", [*tiny_cls, *SMALL, f"backbone.weights={tmp_path / 'start.pth'}",
                                         "backbone.trainable_stages=1", "optim.backbone_lr_scale=0.5"]).dir
    after = load_checkpoint(run / "checkpoints" / "last.pt")["model"]
    for key, value in start.items():
        if not key.startswith("layer4.") and not key.endswith("num_batches_tracked"):
            assert torch.equal(after[f"backbone.{key}"], value), key  # weights and BN statistics alike
    assert not torch.equal(after["backbone.layer4.1.conv2.weight"], start["layer4.1.conv2.weight"])
    counters = [k for k in after if k.startswith("backbone.") and k.endswith("num_batches_tracked")]
    assert counters and all(k.startswith("backbone.layer4.") for k in counters)  # frozen stages: FrozenBatchNorm2d
    tasks.evaluate(run, device="cpu")  # the checkpoint rebuilds with the same frozen modules


def test_frozen_bn_keeps_statistics_while_convolutions_learn(tiny_cls, tmp_path) -> None:
    start = backbones.create("resnet18", width=0.25, in_channels=1).state_dict()
    torch.save(start, tmp_path / "start.pth")
    run = tasks.train("classification", [*tiny_cls, *SMALL, f"backbone.weights={tmp_path / 'start.pth'}",
                                         "backbone.frozen_bn=true"]).dir
    after = load_checkpoint(run / "checkpoints" / "last.pt")["model"]
    assert torch.equal(after["backbone.layer2.0.bn1.running_mean"], start["layer2.0.bn1.running_mean"])
    assert torch.equal(after["backbone.layer2.0.bn1.weight"], start["layer2.0.bn1.weight"])
    assert not torch.equal(after["backbone.layer2.0.conv1.weight"], start["layer2.0.conv1.weight"])


def test_backbone_lr_scale_gives_the_backbone_its_own_rate() -> None:
    model, cfg = _model([*SMALL, "optim.lr=0.1", "optim.backbone_lr_scale=0.1", "backbone.trainable_stages=2"])
    groups = build_optimizer(model, cfg.optim).param_groups
    assert [g["lr"] for g in groups] == pytest.approx([0.1, 0.1, 0.01, 0.01])
    inside = {id(p) for p in model.backbone.parameters()}
    assert all(id(p) not in inside for g in groups[:2] for p in g["params"])
    assert sum(len(g["params"]) for g in groups) == sum(p.requires_grad for p in model.parameters())
    assert len(build_optimizer(model, load_config(ClassificationConfig, None, []).optim).param_groups) == 2


def test_bad_weights_are_one_line_errors(tiny_cls, tmp_path) -> None:
    model, _ = _model(SMALL)
    cases = [(tmp_path / "none.pth", "does not exist"), (tmp_path, "without checkpoints")]
    (tmp_path / "code.pth").write_bytes(pickle.dumps({"x": print}))  # not weights-only: refused, not executed
    cases.append((tmp_path / "code.pth", "not a safe state dict"))
    torch.save({"epoch": 3}, tmp_path / "empty.pth")
    cases.append((tmp_path / "empty.pth", "holds no state dict"))
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), tmp_path / "r34.pth")
    cases.append((tmp_path / "r34.pth", r"unexpected layer1\.2\.conv1\.weight"))
    for path, message in cases:
        cfg = load_config(ClassificationConfig, None, [*SMALL, f"backbone.weights={path}"])
        with pytest.raises(UserError, match=message) as err:
            load_pretrained(model, cfg.backbone)
        assert "\n" not in str(err.value)


def test_a_run_of_another_backbone_is_named(tiny_cls) -> None:
    source = tasks.train("classification", [*tiny_cls, "trainer.max_steps=1", "trainer.eval_every=1"]).dir
    model, cfg = _model([*SMALL, f"backbone.weights={source}"])
    with pytest.raises(UserError, match=r"backbone 'resnet20'.*set backbone\.name=resnet20"):
        load_pretrained(model, cfg.backbone)
    with pytest.raises(UserError, match=r"backbone.trainable_stages=5 is not valid .* 0\.\.4"):
        _model([*SMALL, "backbone.trainable_stages=5"])
