"""Segmentation end to end on tiny generated data: VOC and paired folders train and evaluate; predict."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import tasks
from tasks.segmentation.task import TASK

from .conftest import scene, write_paired, write_voc

METRICS = {"miou", "pixel_acc", "dice", "loss", "per_class_iou"}


def _check_run(run, classes: list[str]) -> dict:
    metrics = tasks.evaluate(run)
    assert METRICS <= set(metrics) and 0 <= metrics["miou"] <= 1 and 0 <= metrics["pixel_acc"] <= 1
    assert list(metrics["per_class_iou"]) == classes
    assert (run / "overlays.png").is_file() and (run / "class_iou.png").is_file()
    assert json.loads((run / "run.json").read_text())["headline"] == "miou"
    return metrics


def test_voc_layout_trains_and_evaluates(tmp_path, tiny, capsys) -> None:
    write_voc(tmp_path / "voc")
    run = tasks.train(TASK, [f"data.root={tmp_path / 'voc'}", *tiny]).dir
    assert "data.dataset=auto -> voc" in capsys.readouterr().err
    info = json.loads((run / "data_info.json").read_text())
    assert info["dataset"] == "voc" and info["num_classes"] == 21 and info["classes"][15] == "person"
    _check_run(run, info["classes"])


def test_paired_folder_with_classes_txt_trains_and_evaluates(tmp_path, tiny) -> None:
    write_paired(tmp_path / "paired")
    run = tasks.train(TASK, [f"data.root={tmp_path / 'paired'}", "model.loss=ce+0.5*lovasz", *tiny]).dir
    metrics = _check_run(run, ["background", "square", "disc"])
    assert metrics["images"] == 3  # the val/ folder, whole images of several sizes (padded per batch)
    logged = [json.loads(line) for line in (run / "train.jsonl").read_text().splitlines()]
    assert {"train/ce", "train/lovasz", "train/pixel_acc"} <= set(logged[-1])


def test_predict_on_an_unseen_image_size(tmp_path, tiny, rsuite) -> None:
    write_paired(tmp_path / "paired", split=False, classes=False)
    code, out, err = rsuite("train", "segmentation", f"data.root={tmp_path / 'paired'}", *tiny)
    assert code == 0, err
    run = out.strip().splitlines()[-1]
    image, _ = scene(7, width=75, height=53)  # never seen: training crops were 32x32, images at most 42x42
    Image.fromarray(image).save(tmp_path / "big.jpg")
    code, out, err = rsuite("predict", run, str(tmp_path / "big.jpg"), "--out", str(tmp_path / "out" / "mask.png"))
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    mask = np.asarray(Image.open(tmp_path / "out" / "mask.png"))
    assert mask.shape == (53, 75) and mask.max() < 3  # one class index per pixel: no classes.txt -> 3 found
    assert Image.open(result["overlay"]).size == (75, 53)
    assert result["size"] == [75, 53] and abs(sum(result["classes"].values()) - 1) < 1e-3


def test_bad_mask_stops_training_with_one_line(tmp_path, tiny, rsuite) -> None:
    root = write_paired(tmp_path / "paired")
    bad = root / "train" / "masks" / "img2.png"
    mask = np.asarray(Image.open(bad)).copy()
    mask[0, 0] = 7  # classes.txt lists three classes
    Image.fromarray(mask, mode="L").save(bad)
    code, _, err = rsuite("train", "segmentation", f"data.root={root}", "data.augment=false", *tiny,
                          "trainer.max_steps=3")
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: mask ") and str(bad) in line and "class index 7" in line


@pytest.mark.parametrize("arch", ["fpn", "deeplabv3plus"])
def test_other_architectures_train_on_the_generated_scenes(arch, tmp_path, tiny, monkeypatch) -> None:
    monkeypatch.setenv("RSUITE_CACHE", str(tmp_path / "cache"))
    settings = [s for s in tiny if not s.startswith("model.options")]
    run = tasks.train(TASK, [f"model.arch={arch}", "data.num_train=8", "data.num_val=4", "data.image_size=64",
                             "data.min_object_size=12", "data.max_object_size=28", *settings]).dir
    info = json.loads((run / "data_info.json").read_text())
    assert info["dataset"] == "scenes" and info["classes"][0] == "background" and info["num_classes"] == 11
    assert 0 <= tasks.evaluate(run)["miou"] <= 1
