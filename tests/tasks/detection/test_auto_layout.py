"""``data.dataset=auto``: COCO layouts under data.root pick coco; no root keeps the generated scenes."""

import json

import pytest
from PIL import Image

from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.core.layouts import resolve_dataset
from tasks.detection.config import DetectionConfig
from tasks.detection.data import LAYOUTS, build_data, coco_files, detect_layout


def _split(images, ann_file, n: int = 2) -> None:
    """``n`` 40x30 images with one box each, and their COCO json."""
    images.mkdir(parents=True, exist_ok=True)
    ann_file.parent.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("RGB", (40, 30), (50 * i, 20, 20)).save(images / f"{i}.png")
    doc = {"images": [{"id": i + 1, "file_name": f"{i}.png", "width": 40, "height": 30} for i in range(n)],
           "annotations": [{"id": i + 1, "image_id": i + 1, "category_id": 7, "bbox": [4, 4, 12, 10], "area": 120,
                            "iscrowd": 0} for i in range(n)],
           "categories": [{"id": 7, "name": "cat"}]}
    ann_file.write_text(json.dumps(doc))


def _data(*overrides: str):
    return build_data(load_config(DetectionConfig, None, ["data.augment=false", *overrides]))


def _same(auto, explicit) -> None:
    assert auto.info == explicit.info and auto.info["dataset"] == "coco"
    assert auto.train.records == explicit.train.records and auto.val.records == explicit.val.records


def test_per_split_coco_is_detected_and_announced(tmp_path, capsys) -> None:
    for split in ("train", "val"):
        _split(tmp_path / split / "images", tmp_path / split / "annotations.json")
    assert detect_layout(tmp_path) == "coco"
    auto = _data(f"data.root={tmp_path}")
    assert "data.dataset=auto -> coco (found train/annotations.json + val/annotations.json" in capsys.readouterr().err
    assert len(auto.train) == len(auto.val) == 2 and auto.info["classes"] == ["__background__", "cat"]
    _same(auto, _data("data.dataset=coco", f"data.root={tmp_path}"))


def test_official_coco_tree_is_detected(tmp_path) -> None:
    for split in ("train2017", "val2017"):
        _split(tmp_path / split, tmp_path / "annotations" / f"instances_{split}.json")
    assert detect_layout(tmp_path) == "coco"
    assert coco_files(tmp_path) == ("train2017", "annotations/instances_train2017.json",
                                    "val2017", "annotations/instances_val2017.json")
    explicit = _data("data.dataset=coco", f"data.root={tmp_path}", "data.train_images=train2017",
                     "data.train_annotations=annotations/instances_train2017.json", "data.val_images=val2017",
                     "data.val_annotations=annotations/instances_val2017.json")
    _same(_data(f"data.root={tmp_path}"), explicit)
    _same(_data("data.dataset=coco", f"data.root={tmp_path}"), explicit)  # explicit coco finds the tree too
    _same(_data(f"data.root={tmp_path}", "data.train_annotations=annotations/instances_train2017.json",
                "data.val_annotations=annotations/instances_val2017.json"), explicit)  # explicit paths mean coco


def test_unknown_or_missing_root_is_one_line_user_error(tmp_path) -> None:
    (tmp_path / "train" / "images").mkdir(parents=True)  # images but no annotations
    with pytest.raises(UserError) as err:
        _data(f"data.root={tmp_path}")
    message = str(err.value)
    assert "\n" not in message and "matches no known layout" in message and "data.dataset explicitly" in message
    assert "{train,val}/annotations.json" in message and "annotations/instances_{train,val}*.json (COCO)" in message
    with pytest.raises(UserError, match="does not exist"):
        _data(f"data.root={tmp_path / 'nope'}")


def test_auto_without_root_is_the_generated_scenes() -> None:
    assert load_config(DetectionConfig).data.dataset == "auto"
    assert resolve_dataset("auto", "", "scenes", LAYOUTS) == "scenes"
    assert resolve_dataset("scenes", "/anything", "scenes", LAYOUTS) == "scenes"  # explicit: untouched
