"""Validation metrics of an SR model beside the bicubic baseline, and a side-by-side PNG.

Every validation image is upscaled whole (or in tiles, ``model.tile``), rounded to 8 bits as
a saved PNG would be, and scored against its HR original on the Y channel with ``scale``
pixels shaved (:mod:`.metrics`). The bicubic upsampling of the same LR image is scored the
same way, so ``gain_db`` is the model's improvement over bicubic on identical pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from .imaging import center_crop, side_by_side, to_uint8, upscale_bicubic
from .metrics import SRMetrics, psnr_y
from .model import unwrap

COMPARE_FILE = "sr_compare.png"
COMPARE_SIDE = 320  # HR pixels per panel of the side-by-side picture


def _images(batch: tuple[Any, Any]) -> list[tuple[torch.Tensor, torch.Tensor]]:
    lrs, hrs = batch
    return list(zip(lrs, hrs))  # a stacked tensor and a list both iterate per image


def evaluate(model: nn.Module, loader: DataLoader, device: torch.device, info: dict[str, Any], cfg: Any,
             run_dir: Path | None = None) -> dict[str, float]:
    """Y-channel PSNR/SSIM of ``model`` and of bicubic on the validation images (fixed names).

    Returns ``psnr_y``, ``ssim_y``, ``psnr_y_bicubic``, ``ssim_y_bicubic``, ``psnr_rgb``,
    ``psnr_rgb_bicubic``, ``gain_db`` and ``images``; writes ``sr_compare.png`` (bicubic |
    model | ground truth, first validation image) into ``run_dir`` when given.
    """
    scale = int(info["scale"])
    net = unwrap(model)
    metrics = SRMetrics(shave_border=scale)
    first: tuple[torch.Tensor, ...] | None = None
    for batch in loader:
        for lr, hr in _images(batch):
            lr8, hr8 = to_uint8(lr), to_uint8(hr)
            sr8 = to_uint8(net.upscale(lr.unsqueeze(0).to(device))[0])
            bicubic8 = upscale_bicubic(lr8, scale)
            metrics.update(sr8, bicubic8, hr8)
            if first is None:
                first = (bicubic8, sr8, hr8)
    if run_dir is not None and first is not None:
        write_compare(*first, scale=scale, path=Path(run_dir) / COMPARE_FILE)
    return metrics.compute()


def write_compare(bicubic: torch.Tensor, sr: torch.Tensor, hr: torch.Tensor | None, scale: int, path: Path,
                  side: int = COMPARE_SIDE) -> Path:
    """bicubic | model | ground truth (when known) of the central ``side``-pixel window, PSNR-Y in the labels."""
    panels = [bicubic, sr] + ([hr] if hr is not None else [])
    panels = [center_crop(p, side) for p in panels]
    titles = ["bicubic", "model"]
    if hr is not None:
        titles = [f"{t}: PSNR-Y {psnr_y(p, panels[2], scale):.2f} dB" for t, p in zip(titles, panels)]
        titles.append("ground truth")
    return side_by_side(list(zip(titles, panels)), path)
