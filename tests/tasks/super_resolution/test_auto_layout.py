"""``data.dataset=auto``: DIV2K folders or a flat image folder pick ``folder``; no root keeps the photos."""

import numpy as np
import pytest
import torch
from PIL import Image

from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.core.layouts import resolve_dataset
from tasks.super_resolution.config import SuperResolutionConfig
from tasks.super_resolution.data import LAYOUTS, build_data, detect_layout


def _save(folder, n: int, start: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(start, start + n):
        pixels = np.random.default_rng(i).integers(0, 256, (40, 48, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i:04d}.png")


def _data(*overrides: str):
    small = ["data.patch_size=16", "data.patches_per_image=2", "data.augment=false"]
    return build_data(load_config(SuperResolutionConfig, None, [*small, *overrides]))


def _same(auto, explicit) -> None:
    assert auto.info == explicit.info and auto.info["dataset"] == "folder"
    assert [p.hr for p in auto.train.pairs] == [p.hr for p in explicit.train.pairs]
    assert all(torch.equal(a, b) for a, b in zip(auto.val[0], explicit.val[0]))


@pytest.mark.parametrize("prefix", ["DIV2K_", ""])
def test_div2k_folders_are_detected_and_announced(tmp_path, capsys, prefix) -> None:
    _save(tmp_path / f"{prefix}train_HR", 3)
    _save(tmp_path / f"{prefix}valid_HR", 1, start=3)
    assert detect_layout(tmp_path) == "folder"
    auto = _data(f"data.root={tmp_path}")
    assert f"data.dataset=auto -> folder (found {prefix}train_HR/ + {prefix}valid_HR/" in capsys.readouterr().err
    assert len(auto.train.pairs) == 3 and auto.info["val_names"] == ["0003"]
    _same(auto, _data("data.dataset=folder", f"data.root={tmp_path}"))


def test_flat_image_folder_is_detected(tmp_path) -> None:
    _save(tmp_path, 4)
    assert detect_layout(tmp_path) == "folder"
    auto = _data(f"data.root={tmp_path}", "data.val_every=2")
    assert auto.info["val_names"] == ["0001", "0003"]
    _same(auto, _data("data.dataset=folder", f"data.root={tmp_path}", "data.val_every=2"))


def test_unknown_or_missing_root_is_one_line_user_error(tmp_path) -> None:
    (tmp_path / "DIV2K_train_HR").mkdir()  # no valid_HR, no images
    with pytest.raises(UserError) as err:
        _data(f"data.root={tmp_path}")
    message = str(err.value)
    assert "\n" not in message and "matches no known layout" in message and "data.dataset explicitly" in message
    assert "[DIV2K_]train_HR/ + [DIV2K_]valid_HR/ (DIV2K)" in message and "(flat HR folder)" in message
    with pytest.raises(UserError, match="does not exist"):
        _data(f"data.root={tmp_path / 'nope'}")


def test_auto_without_root_is_the_embedded_photos() -> None:
    assert load_config(SuperResolutionConfig).data.dataset == "auto"
    assert resolve_dataset("auto", "", "skimage", LAYOUTS) == "skimage"
    assert resolve_dataset("skimage", "/anything", "skimage", LAYOUTS) == "skimage"  # explicit: untouched
