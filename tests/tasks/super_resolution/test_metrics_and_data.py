"""Super-resolution metrics (Y-PSNR, shave, bicubic baseline) and paired data, checked by hand."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.super_resolution.config import SuperResolutionConfig
from tasks.super_resolution.data import Pair, PatchPairs, build_data, collate_pairs, paired_crop
from tasks.super_resolution.imaging import downscale, to_uint8, upscale_bicubic
from tasks.super_resolution.metrics import SRMetrics, psnr_y, rgb_to_y, shave


def _image(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (3, h, w), dtype=np.uint8))


def test_y_psnr_matches_a_hand_computed_value() -> None:
    hr = torch.full((3, 8, 8), 100, dtype=torch.uint8)
    sr = hr.clone()
    sr[1, 2, 3] = 110  # one green pixel off by 10 -> Y off by 10 * 128.553 / 255
    dy = 10 * 128.553 / 255
    expected = 10 * math.log10(255**2 / (dy**2 / 64))
    assert psnr_y(sr, hr) == pytest.approx(expected, abs=1e-4)
    # BT.601: white is Y = 235, black Y = 16 (studio range)
    assert rgb_to_y(torch.full((1, 3, 1, 1), 255.0)).item() == pytest.approx(235.0, abs=1e-3)
    assert rgb_to_y(torch.zeros(1, 3, 1, 1)).item() == pytest.approx(16.0)


def test_shave_drops_the_border_from_the_score() -> None:
    hr = torch.full((3, 12, 12), 80, dtype=torch.uint8)
    sr = hr.clone()
    sr[:, :2, :] = 0  # errors only in the top two rows
    assert shave(torch.zeros(1, 1, 12, 12), 2).shape == (1, 1, 8, 8)
    assert psnr_y(sr, hr, border=1) < 40  # row 1 still counts
    assert math.isinf(psnr_y(sr, hr, border=2)) or psnr_y(sr, hr, border=2) > 100


def test_bicubic_baseline_on_a_known_pair() -> None:
    # A linear ramp: cubic kernels reproduce linear functions, so bicubic recovers it inside.
    x = np.arange(64, dtype=np.float64)
    ramp = np.clip(40 + 2 * x[None, :] + 1 * x[:, None], 0, 255).astype(np.uint8)
    hr = torch.from_numpy(np.stack([ramp] * 3))
    lr = downscale(hr, 2)
    bicubic = upscale_bicubic(lr, 2)
    assert lr.shape == (3, 32, 32) and bicubic.shape == hr.shape
    inner = (slice(None), slice(6, -6), slice(6, -6))
    assert (bicubic[inner].int() - hr[inner].int()).abs().max() <= 1
    # The baseline row equals PSNR computed independently in NumPy on Pillow's own output.
    photo = _image(40, 48)
    small = np.asarray(Image.fromarray(photo.permute(1, 2, 0).numpy()).resize((24, 20), Image.BICUBIC))
    big = np.asarray(Image.fromarray(small).resize((48, 40), Image.BICUBIC)).astype(np.float64)
    w = np.array([65.481, 128.553, 24.966]) / 255
    y_ref, y_big = 16 + photo.permute(1, 2, 0).double().numpy() @ w, 16 + big @ w
    mse = ((y_ref - y_big)[2:-2, 2:-2] ** 2).mean()
    m = SRMetrics(shave_border=2)
    m.update(photo, upscale_bicubic(downscale(photo, 2), 2), photo)
    assert m.compute()["psnr_y_bicubic"] == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-4)
    assert m.compute()["psnr_y"] == float("inf") or m.compute()["psnr_y"] > 100


def test_paired_crops_stay_aligned() -> None:
    hr = _image(120, 96)
    lr = downscale(hr, 4)
    torch.manual_seed(0)
    for _ in range(5):
        lr_patch, hr_patch = paired_crop(lr, hr, 4, 12)
        assert lr_patch.shape == (3, 12, 12) and hr_patch.shape == (3, 48, 48)
        # The HR patch downscaled on its own gives the LR patch (inside the kernel's reach of its edge).
        again = downscale(hr_patch.contiguous(), 4)
        assert (again[:, 2:-2, 2:-2].int() - lr_patch[:, 2:-2, 2:-2].int()).abs().max() <= 1
    wrong_lr, _ = paired_crop(lr, hr, 4, 12, top=3, left=4)
    _, wrong_hr = paired_crop(lr, hr, 4, 12, top=3, left=5)  # one LR pixel off: must not match
    assert (downscale(wrong_hr.contiguous(), 4)[:, 2:-2, 2:-2].int() - wrong_lr[:, 2:-2, 2:-2].int()).abs().max() > 1


def test_flips_and_rotations_are_identical_on_both_patches() -> None:
    # An HR image whose 2x2 block means are its LR image: that relation survives a flip or a
    # 90-degree rotation only when both patches get the same one.
    hr = _image(64, 64).float()
    lr = torch.nn.functional.avg_pool2d(hr[None], 2)[0]
    ds = PatchPairs([Pair("x", hr.to(torch.uint8))], 2, 32, per_image=16, augment=True)
    ds.cache = [(lr, hr)]
    torch.manual_seed(1)
    changed = 0
    for i in range(16):
        lr_p, hr_p = ds[i]
        assert torch.allclose(torch.nn.functional.avg_pool2d(hr_p[None], 2)[0], lr_p, atol=1e-5)
        changed += not any(torch.equal(hr_p, (hr[:, t:t + 32, s:s + 32] / 255)) for t in range(33) for s in range(33))
    assert changed > 4  # most samples were flipped or rotated


def test_embedded_default_and_collate() -> None:
    cfg = load_config(SuperResolutionConfig, None, ["data.limit_train=2", "data.patch_size=48"])
    data = build_data(cfg)
    lr, hr = data.train[0]
    assert lr.shape == (3, 24, 24) and hr.shape == (3, 48, 48) and 0 <= lr.min() and hr.max() <= 1
    assert data.info["val_names"] == ["chelsea", "coffee", "sklearn_flower"] and len(data.info["mean"]) == 3
    lrs, hrs = collate_pairs([data.val[0], data.val[1]])  # different sizes: lists
    assert isinstance(lrs, list) and hrs[0].shape[-1] == 2 * lrs[0].shape[-1]
    lrs, _ = collate_pairs([data.train[0], data.train[1]])
    assert lrs.shape == (2, 3, 24, 24)
    assert torch.equal(to_uint8(hrs[0]), (hrs[0] * 255).round().to(torch.uint8))


def test_folder_layout_with_paired_lr_folder(tmp_path) -> None:
    for split, n in (("train", 3), ("valid", 1)):
        (tmp_path / f"{split}_HR").mkdir()
        (tmp_path / f"{split}_LR_bicubic" / "X2").mkdir(parents=True)
        for i in range(n):
            hr = _image(64, 80, seed=i)
            Image.fromarray(hr.permute(1, 2, 0).numpy()).save(tmp_path / f"{split}_HR" / f"{i:04d}.png")
            lr = downscale(hr, 2)
            lr_file = tmp_path / f"{split}_LR_bicubic" / "X2" / f"{i:04d}x2.png"
            Image.fromarray(lr.permute(1, 2, 0).numpy()).save(lr_file)
    overrides = ["data.dataset=folder", f"data.root={tmp_path}", "data.patch_size=32"]
    cfg = load_config(SuperResolutionConfig, None, overrides)
    data = build_data(cfg)
    assert len(data.train) == 3 * cfg.data.patches_per_image and len(data.val) == 1
    assert data.train.pairs[0].lr.name == "0000x2.png"
    lr, hr = data.val[0]
    assert lr.shape == (3, 32, 40) and hr.shape == (3, 64, 80)
    (tmp_path / "valid_LR_bicubic" / "X2" / "0000x2.png").unlink()
    with pytest.raises(UserError, match=r"no LR image for 0000\.png"):
        build_data(cfg)


def test_bad_settings_are_one_line_user_errors(tmp_path) -> None:
    for overrides, match in ((["data.scale=5"], "data.scale=5"), (["data.dataset=div"], "data.dataset"),
                             (["data.dataset=folder"], "data.root"),
                             (["data.dataset=folder", f"data.root={tmp_path / 'nope'}"], "not a folder"),
                             (["data.patch_size=95", "data.limit_train=1"], "patch_size=95")):
        with pytest.raises(UserError, match=match):
            build_data(load_config(SuperResolutionConfig, None, overrides))
