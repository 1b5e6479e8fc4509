"""Segmentation data: layouts and auto-detection, COCO painting, bad masks, augmentation, padding, scenes."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils

from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.segmentation.coco import paint_instances, read_panoptic
from tasks.segmentation.config import DataConfig, SegmentationConfig
from tasks.segmentation.data import PadCollate, build_data, train_augmentation
from tasks.segmentation.sources import detect_layout

from .conftest import write_paired, write_voc


def _data(*overrides: str, split: str = "train"):
    return build_data(load_config(SegmentationConfig, None, ["data.augment=false", *overrides]), split)


def test_layouts_are_detected(tmp_path) -> None:
    write_voc(tmp_path / "voc")
    write_paired(tmp_path / "split")
    write_paired(tmp_path / "single", split=False)
    _coco(tmp_path / "coco")
    assert [detect_layout(tmp_path / d) for d in ("voc", "split", "single", "coco")] == ["voc", "paired", "paired",
                                                                                          "coco"]
    with pytest.raises(UserError, match="matches no known layout; looked for JPEGImages/"):
        detect_layout(tmp_path / "voc" / "VOCdevkit" / "VOC2012" / "JPEGImages")


def test_voc_and_paired_samples(tmp_path) -> None:
    write_voc(tmp_path / "voc")
    voc = _data(f"data.root={tmp_path / 'voc'}")
    assert (len(voc.train), len(voc.val)) == (8, 4)
    image, mask = voc.val[0]
    assert image.shape[1:] == mask.shape and set(mask.unique().tolist()) <= {0, 1, 2, 255}
    single = _data(f"data.root={write_paired(tmp_path / 'single', split=False, classes=False)}")
    assert (len(single.train), len(single.val)) == (11, 1)  # a fixed 10 % held out
    assert single.info["classes"] == ["background", "class1", "class2"]  # no classes.txt: largest index + 1
    again = _data(f"data.root={tmp_path / 'single'}", "seed=5")
    assert [r["image"] for r in again.val.records] == [r["image"] for r in single.val.records]  # any seed


def test_bad_masks_are_one_line_errors_naming_the_file(tmp_path) -> None:
    root = write_paired(tmp_path / "p")
    wrong_size = root / "train" / "masks" / "img1.png"
    Image.fromarray(np.zeros((5, 5), np.uint8), mode="L").save(wrong_size)
    with pytest.raises(UserError, match=rf"mask {wrong_size} is 5x5 but its image .*img1.png is"):
        _data(f"data.root={root}")
    Image.fromarray(np.zeros((34, 42, 3), np.uint8)).save(wrong_size)  # an RGB picture, not an index mask
    with pytest.raises(UserError, match=rf"mask {wrong_size} is a RGB image"):
        _data(f"data.root={root}", "data.num_classes=3")
    Image.fromarray(np.full((34, 42), 3, np.uint8), mode="L").save(wrong_size)
    data = _data(f"data.root={root}")
    with pytest.raises(UserError, match=rf"^mask {wrong_size} has class index 3 but the dataset has 3 cl") as caught:
        data.train[1]
    assert "\n" not in str(caught.value)
    mask = np.zeros((34, 42), np.uint8)
    mask[0] = 255  # the ignore index is no class
    Image.fromarray(mask, mode="L").save(wrong_size)
    assert data.train[1][1][0].eq(255).all()


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's crowd format: run lengths of the column-major pixels, starting with a run of zeros."""
    flat = mask.flatten(order="F")
    edges = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], edges, [flat.size]])).tolist()
    return {"size": list(mask.shape), "counts": ([0] if flat[0] else []) + runs}


def _coco(root, panoptic: bool = False) -> None:
    """A per-split COCO layout: one 20x16 image per split, two overlapping instances and a crowd region."""
    for split in ("train", "val"):
        (root / split / "images").mkdir(parents=True)
        Image.new("RGB", (20, 16), (90, 90, 90)).save(root / split / "images" / "a.png")
        doc = {"images": [{"id": 1, "file_name": "a.png", "width": 20, "height": 16}],
               "categories": [{"id": 5, "name": "cat"}, {"id": 9, "name": "dog"}]}
        if panoptic:
            ids = np.zeros((16, 20), np.uint32)
            ids[2:8, 2:8], ids[8:14, 10:18] = 1001, 2002
            rgb = np.stack([ids % 256, ids // 256 % 256, ids // 65536], -1).astype(np.uint8)
            (root / split / "panoptic").mkdir()
            Image.fromarray(rgb).save(root / split / "panoptic" / "a.png")
            doc["annotations"] = [{"image_id": 1, "file_name": "a.png", "segments_info": [
                {"id": 1001, "category_id": 9}, {"id": 2002, "category_id": 5}]}]
        else:
            square = np.zeros((16, 20), np.uint8)
            square[2:8, 2:8] = 1
            rle = mask_utils.encode(np.asfortranarray(square))
            rle["counts"] = rle["counts"].decode()
            doc["annotations"] = [
                {"id": 1, "image_id": 1, "category_id": 5, "segmentation": rle, "iscrowd": 0, "bbox": [2, 2, 6, 6]},
                {"id": 2, "image_id": 1, "category_id": 9, "iscrowd": 0, "bbox": [6, 2, 6, 6],  # polygon overlapping
                 "segmentation": [[6, 2, 12, 2, 12, 8, 6, 8]]},
                {"id": 3, "image_id": 1, "category_id": 9, "iscrowd": 1, "bbox": [14, 10, 4, 4],
                 "segmentation": _uncompressed_rle(np.pad(np.ones((4, 4), np.uint8), ((10, 2), (14, 2))))}]
        (root / split / "annotations.json").write_text(json.dumps(doc))


def test_coco_instances_are_painted_like_torchvisions_reference(tmp_path) -> None:
    _coco(tmp_path / "coco")
    data = _data(f"data.root={tmp_path / 'coco'}")
    assert data.info["classes"] == ["background", "cat", "dog"] and data.info["coco"] == "instances"
    mask = data.val[0][1].numpy()
    assert (mask[3:7, 3:6] == 1).all()  # cat alone
    assert (mask[3:7, 9:11] == 2).all()  # dog alone
    assert (mask[3:7, 6:8] == 255).all()  # claimed by both: ignored
    assert (mask[10:14, 14:18] == 255).all() and mask[0, 0] == 0  # crowd ignored; the rest is background
    assert (paint_instances(data.val.records[0], 200) == np.where(mask == 255, 200, mask)).all()


def test_coco_panoptic_labels_every_segment_and_ignores_void(tmp_path) -> None:
    _coco(tmp_path / "pan", panoptic=True)
    data = _data(f"data.root={tmp_path / 'pan'}")
    assert data.info["classes"] == ["cat", "dog"] and data.info["coco"] == "panoptic"
    mask = read_panoptic(data.val.records[0], 255)
    assert (mask[2:8, 2:8] == 1).all() and (mask[8:14, 10:18] == 0).all() and mask[0, 0] == 255


def test_augmentation_moves_the_mask_with_the_image_and_pads_with_ignore() -> None:
    aug = train_augmentation(DataConfig(crop_size=48, scale_range=[0.5, 1.5], color_jitter=0.0))
    image = np.zeros((40, 40, 3), np.uint8)
    mask = np.zeros((40, 40), np.uint8)
    image[5:20, 10:30] = 255
    mask[5:20, 10:30] = 3
    padding_seen = False
    for seed in range(8):
        aug.set_random_seed(seed)
        out = aug(image=image, mask=mask)
        assert out["image"].shape[:2] == out["mask"].shape == (48, 48)
        assert set(np.unique(out["mask"]).tolist()) <= {0, 3, 255}  # nearest: no blended labels
        bright = out["image"].max(-1) > 128
        assert (bright == (out["mask"] == 3)).mean() > 0.97  # the object stays where its label is
        padded = out["mask"] == 255  # the crop is larger than most rescaled images
        assert (out["image"][padded] == [124, 116, 104]).all()  # padding is the mean colour (0 once normalised)
        padding_seen = padding_seen or padded.any()
    assert padding_seen


def test_collate_pads_to_the_output_stride_with_the_ignore_index() -> None:
    collate = PadCollate(32, 255)
    batch = [(torch.ones(3, 30, 40), torch.zeros(30, 40, dtype=torch.long)),
             (torch.ones(3, 33, 20), torch.ones(33, 20, dtype=torch.long))]
    images, masks = collate(batch)
    assert images.shape == (2, 3, 64, 64) and masks.shape == (2, 64, 64)
    assert masks[0, 30:].eq(255).all() and masks[0, :30, 40:].eq(255).all() and masks[0, :30, :40].eq(0).all()
    assert images[1, :, :33, :20].eq(1).all() and images[1, :, 33:].eq(0).all()


def test_generated_scenes_give_semantic_masks_deterministically(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RSUITE_CACHE", str(tmp_path / "cache"))
    small = ["data.num_train=4", "data.num_val=2", "data.image_size=48", "data.min_object_size=12",
             "data.max_object_size=24"]
    a = _data(*small)
    assert a.info["dataset"] == "scenes" and a.info["num_classes"] == 11
    first = a.train[0][1]
    assert first.shape == (48, 48) and first.max() <= 10 and (first > 0).any() and (first == 0).any()
    assert (tmp_path / "cache" / "segmentation").is_dir()
    shutil.rmtree(tmp_path / "cache")
    assert torch.equal(_data(*small).train[0][1], first)  # regenerated from the seed: the same scene
    assert not torch.equal(_data(*small, "seed=1").train[0][1], first)
