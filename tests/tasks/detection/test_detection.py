"""Detection plugin: COCO round trip, scene generator, box-aware augmentation, detectors, mAP, predict."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import tasks
from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.detection.config import DataConfig, DetectionConfig
from tasks.detection.data import CocoDetection, read_coco, train_augmentation
from tasks.detection.evaluate import evaluate
from tasks.detection.scenes import write_split
from tasks.detection.task import TASK


def _coco(tmp_path, annotations: list[dict], files: int = 2) -> tuple:
    images = tmp_path / "images"
    images.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        Image.new("RGB", (40, 30), (i * 60, 20, 20)).save(images / f"{i}.png")
    doc = {"images": [{"id": i + 1, "file_name": f"{i}.png", "width": 40, "height": 30} for i in range(files)],
           "annotations": annotations, "categories": [{"id": 7, "name": "cat"}, {"id": 3, "name": "dog"}]}
    ann = tmp_path / "annotations.json"
    ann.write_text(json.dumps(doc))
    return ann, images


def test_coco_round_trip_remaps_categories(tmp_path) -> None:
    anns = [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [2, 3, 10, 5], "area": 50, "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 3, "bbox": [0, 0, 4, 4], "area": 16, "iscrowd": 0}]
    ann, images = _coco(tmp_path, anns)
    records, categories, _ = read_coco(ann, images)
    label_of = {c["id"]: k + 1 for k, c in enumerate(categories)}
    assert label_of == {3: 1, 7: 2}  # sorted ids -> contiguous labels, 0 = background
    ds = CocoDetection(records, label_of)
    image, target = ds[0]
    assert image.shape == (3, 30, 40) and target["labels"].tolist() == [2]
    assert target["boxes"].tolist() == [[2.0, 3.0, 12.0, 8.0]]  # xywh -> xyxy
    assert ds[1][1]["labels"].tolist() == [1]


def test_bad_annotations_are_dropped_with_one_warning(tmp_path, capsys) -> None:
    anns = [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [2, 3, 10, 5], "area": 50, "iscrowd": 0},
            {"id": 2, "image_id": 1, "category_id": 7, "bbox": [2, 3, 0, 5], "area": 0, "iscrowd": 0},
            {"id": 3, "image_id": 1, "category_id": 7, "bbox": [50, 40, 5, 5], "area": 25, "iscrowd": 0},
            {"id": 4, "image_id": 2, "category_id": 99, "bbox": [1, 1, 5, 5], "area": 25, "iscrowd": 0}]
    ann, images = _coco(tmp_path, anns)
    records, _, dropped = read_coco(ann, images)
    assert [len(r["boxes"]) for r in records] == [1, 0]
    assert dropped["non-positive size"] == 1 and dropped["outside the image"] == 1 and dropped["unknown category"] == 1
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "dropped 3 bad annotations" in warnings[0]


def test_missing_image_is_a_one_line_error(tmp_path) -> None:
    ann, images = _coco(tmp_path, [])
    (images / "1.png").unlink()
    with pytest.raises(UserError, match=r"image file .*1\.png .* does not exist"):
        read_coco(ann, images)


def test_scene_generator_is_deterministic_and_consistent(tmp_path) -> None:
    cfg = DataConfig(image_size=64, min_object_size=12, max_object_size=28)
    write_split(tmp_path / "a", 4, seed=3, train=True, cfg=cfg)
    write_split(tmp_path / "b", 4, seed=3, train=True, cfg=cfg)
    write_split(tmp_path / "c", 4, seed=4, train=True, cfg=cfg)
    a, b, c = (json.loads((tmp_path / x / "annotations.json").read_text()) for x in "abc")
    assert a == b and a["annotations"] != c["annotations"]
    for x in ("000000.png", "000003.png"):
        assert (tmp_path / "a/images" / x).read_bytes() == (tmp_path / "b/images" / x).read_bytes()
    from pycocotools import mask as mask_utils

    for ann in a["annotations"]:  # the box is the visible mask's extent
        m = mask_utils.decode({**ann["segmentation"], "counts": ann["segmentation"]["counts"].encode()})
        ys, xs = np.nonzero(m)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert ann["area"] == m.sum() >= 16


def test_augmentation_moves_boxes_with_the_image() -> None:
    aug = train_augmentation(DataConfig(scale_jitter=0.3))
    image = np.zeros((64, 64, 3), np.uint8)
    image[10:20, 40:60] = 255
    for seed in range(10):
        import random

        random.seed(seed)
        np.random.seed(seed)
        out = aug(image=image, bboxes=np.array([[40, 10, 60, 20]], np.float32), labels=[1])
        gray = out["image"].max(-1)
        bright = np.argwhere(gray > 0.5 * gray.max())  # colour jitter changes the level, not the place
        if len(out["bboxes"]) == 0 or gray.max() == 0:
            continue
        x0, y0, x1, y1 = out["bboxes"][0]
        assert abs(bright[:, 1].min() - x0) <= 2 and abs(bright[:, 1].max() + 1 - x1) <= 2
        assert abs(bright[:, 0].min() - y0) <= 2 and abs(bright[:, 0].max() + 1 - y1) <= 2
    out = aug(image=image, bboxes=np.array([[0, 0, 64, 64], [62, 62, 64, 64]], np.float32), labels=[1, 2])
    assert all(0 <= v <= 64 for box in out["bboxes"] for v in box)  # clipped, or dropped when pushed out


def test_augmentation_follows_the_torch_seed(tmp_path) -> None:
    anns = [{"id": 1, "image_id": 1, "category_id": 7, "bbox": [2, 3, 20, 15], "area": 300, "iscrowd": 0}]
    ann, images = _coco(tmp_path, anns, files=1)
    records = read_coco(ann, images)[0]
    ds = CocoDetection(records, {7: 1, 3: 2}, train_augmentation(DataConfig(scale_jitter=0.3)))
    draws = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        draws.append([ds[0] for _ in range(4)])
    same = all(torch.equal(a[0], b[0]) and torch.equal(a[1]["boxes"], b[1]["boxes"]) for a, b in zip(*draws[:2]))
    assert same  # a seeded run (and its resume, which restores torch's RNG) sees the same augmented samples
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(draws[0], draws[2]))


def test_map_on_a_hand_made_pair() -> None:
    # two ground-truth boxes, one found exactly, one missed: AP@50 = 0.5 (class 1 only).
    target = {"boxes": torch.tensor([[0.0, 0, 10, 10], [20, 20, 30, 30]]), "labels": torch.tensor([1, 1])}
    pred = {"boxes": torch.tensor([[0.0, 0, 10, 10]]), "scores": torch.tensor([0.9]), "labels": torch.tensor([1])}

    class Fixed(torch.nn.Module):
        def forward(self, images):
            return [pred]

    loader = [([torch.zeros(3, 32, 32)], [target])]
    metrics = evaluate(Fixed(), loader, torch.device("cpu"), {"classes": ["bg", "a"]}, DetectionConfig())
    assert metrics["map_50"] == pytest.approx(0.5, abs=0.01) and metrics["map_75"] == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize("arch", ["fasterrcnn", "retinanet", "fcos"])
def test_two_training_steps_then_evaluate_and_predict(arch, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RSUITE_CACHE", str(tmp_path / "cache"))
    run = tasks.train(TASK, [
        f"model.arch={arch}", "data.num_train=8", "data.num_val=4", "data.image_size=64", "data.min_object_size=12",
        "data.max_object_size=24", "data.batch_size=4", "model.fpn_channels=32", "backbone.name=resnet18",
        "trainer.max_steps=2", "trainer.eval_every=2", "trainer.log_every=1", "trainer.progress=false",
        f"trainer.runs_dir={tmp_path / 'runs'}", "trainer.run_name=r", "trainer.threads=1",
    ]).dir
    metrics = tasks.evaluate(run)
    assert {"map", "map_50", "map_75"} <= set(metrics) and 0 <= metrics["map_50"] <= 1
    assert (run / "detections.png").is_file()
    if arch == "fasterrcnn":
        from tasks.detection.predict import predict

        image = sorted((tmp_path / "cache" / "detection").glob("scenes-*/val/images/*.png"))[0]
        result = predict(run, [image], tmp_path / "out", threshold=0.0)
        written = Image.open(result[0]["image"])
        assert written.size == (128, 128)  # drawn at 2x for legible labels
        info = json.loads((run / "data_info.json").read_text())  # the label <-> category id map
        assert len(info["category_ids"]) == len(info["classes"]) - 1 == info["num_classes"] - 1
        found = result[0]["detections"][0]
        assert found["category_id"] == info["category_ids"][info["classes"].index(found["label"]) - 1]


def test_trainable_stages_and_frozen_bn() -> None:
    from torchvision.ops.misc import FrozenBatchNorm2d

    from tasks.detection.model import build_model

    cfg = load_config(DetectionConfig, None, ["backbone.trainable_stages=1", "backbone.frozen_bn=true"])
    model = build_model(cfg, {"num_classes": 3, "image_size": 64, "dataset": "scenes"})
    body = model.backbone.body
    assert not body.conv1.weight.requires_grad and not body.layer3[0].conv1.weight.requires_grad
    assert body.layer4[0].conv1.weight.requires_grad
    assert isinstance(body.bn1, FrozenBatchNorm2d)


def _mixed_split(folder, n: int) -> None:
    """A COCO split of landscape (40x30) and portrait (30x40) images, one box each."""
    (folder / "images").mkdir(parents=True)
    images, anns = [], []
    for i in range(n):
        w, h = (40, 30) if i % 2 else (30, 40)
        Image.new("RGB", (w, h), (200, 30 * (i % 8), 20)).save(folder / "images" / f"{i}.png")
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": w, "height": h})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 5, "bbox": [4, 4, 12, 10], "area": 120,
                     "iscrowd": 0})
    doc = {"images": images, "annotations": anns, "categories": [{"id": 5, "name": "thing"}]}
    (folder / "annotations.json").write_text(json.dumps(doc))


def test_aspect_ratio_bins() -> None:
    from tasks.detection.data import aspect_ratio_groups

    groups = aspect_ratio_groups([0.4, 0.75, 1.0, 1.0, 4 / 3, 3.0], factor=1)  # edges 1/2, 1, 2
    assert groups == [0, 1, 2, 2, 2, 3]
    assert len(set(aspect_ratio_groups([3 / 4, 4 / 3], factor=3))) == 2


def test_user_coco_trains_on_aspect_grouped_batches(tmp_path) -> None:
    from tasks.core.engine import Trainer
    from tasks.core.lifecycle import RunFolder
    from tasks.core.loader import GroupedBatchSampler

    _mixed_split(tmp_path / "data" / "train", 16)
    _mixed_split(tmp_path / "data" / "val", 4)
    cfg = load_config(DetectionConfig, None, [
        "data.dataset=coco", f"data.root={tmp_path / 'data'}", "data.batch_size=4", "data.augment=false",
        "model.fpn_channels=16", "model.min_size=32", "model.max_size=48", "trainer.max_steps=2",
        "trainer.eval_every=2", "trainer.progress=false", "trainer.threads=1", f"trainer.runs_dir={tmp_path}"])
    trainer = Trainer(TASK, cfg, RunFolder.claim(tmp_path / "run", TASK.name, resume=False))
    assert isinstance(trainer.sampler, GroupedBatchSampler) and trainer.steps_per_epoch == 4
    shapes = [{tuple(im.shape) for im in images} for images, _ in trainer.train_loader]
    assert len(shapes) == 4 and all(len(s) == 1 for s in shapes)  # every batch is all-portrait or all-landscape
    metrics = trainer.fit()
    assert trainer.step == 2 and 0 <= metrics["map_50"] <= 1
    ungrouped = load_config(DetectionConfig, None, ["data.aspect_ratio_group_factor=-1"])
    assert TASK.batch_sampler(ungrouped, trainer.data.train, 4, 0, 1) is None


def test_retinanet_head_options() -> None:
    from tasks.detection.model import build_model

    info = {"num_classes": 3, "image_size": 64, "dataset": "scenes"}
    v2 = build_model(load_config(DetectionConfig, None, ["model.arch=retinanet"]), info)
    assert any(isinstance(m, torch.nn.GroupNorm) for m in v2.head.modules())
    assert v2.head.regression_head._loss_type == "giou"
    v1 = build_model(load_config(DetectionConfig, None, ["model.arch=retinanet", "model.head_norm=none",
                                                         "model.box_loss=l1"]), info)
    assert not any(isinstance(m, torch.nn.GroupNorm) for m in v1.head.modules())
    assert v1.head.regression_head._loss_type == "l1"
    for bad, message in (("model.head_norm=batch", "head_norm"), ("model.box_loss=iou", "box_loss"),
                         ("model.fpn_channels=48", "divisible by 32")):
        with pytest.raises(UserError, match=message):
            build_model(load_config(DetectionConfig, None, ["model.arch=retinanet", bad]), info)
