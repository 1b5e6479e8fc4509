"""Segment a user's images with a trained run: an index-mask PNG and an overlay per image.

Images up to ``model.window`` pixels a side are segmented whole (padded to the output
stride); larger ones in overlapping windows of that size whose logits are averaged, so the
memory needed does not grow with the image. Where the image fits one window the result is
exactly whole-image inference.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import UnidentifiedImageError
from torch import nn
from torchvision.utils import save_image

from tasks.api import load_run
from tasks.core.errors import UserError

from .data import read_image, to_tensor
from .draw import overlay, save_index_mask
from .model import input_multiple

OVERLAP = 1 / 3  # share of a window its neighbour covers again (mmsegmentation's slide mode uses about this)
WINDOWS_PER_BATCH = 4


def _pad_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return nn.functional.pad(x, (0, w - x.shape[-1], 0, h - x.shape[-2]))


def whole(model: nn.Module, x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Logits ``K x H x W`` of one normalised image ``3 x H x W``, padded to ``multiple`` and cropped back."""
    h, w = x.shape[-2:]
    padded = _pad_to(x, math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple)
    return model(padded[None])[0, :, :h, :w]


def _starts(length: int, window: int, stride: int) -> list[int]:
    starts = list(range(0, max(1, length - window + 1), stride))
    if starts[-1] + window < length:
        starts.append(length - window)  # the last window ends at the border
    return starts


def sliding_window(model: nn.Module, x: torch.Tensor, window: int, multiple: int) -> torch.Tensor:
    """Logits ``K x H x W`` of ``x``: whole-image inference when it fits ``window``, else the mean over
    overlapping windows (each pixel averages the windows that cover it)."""
    h, w = x.shape[-2:]
    window = max(multiple, window // multiple * multiple)
    if h <= window and w <= window:
        return whole(model, x, multiple)
    stride = max(multiple, int(window * (1 - OVERLAP)) // multiple * multiple)
    ph, pw = max(h, window), max(w, window)  # padded to hold at least one window
    padded = _pad_to(x, ph, pw)
    boxes = [(y, x0) for y in _starts(ph, window, stride) for x0 in _starts(pw, window, stride)]
    total: torch.Tensor | None = None
    count = torch.zeros(1, ph, pw, device=x.device)
    for k in range(0, len(boxes), WINDOWS_PER_BATCH):
        chunk = boxes[k: k + WINDOWS_PER_BATCH]
        logits = model(torch.stack([padded[:, y: y + window, x0: x0 + window] for y, x0 in chunk]))
        if total is None:
            total = torch.zeros(logits.shape[1], ph, pw, device=x.device, dtype=logits.dtype)
        for (y, x0), out in zip(chunk, logits):
            total[:, y: y + window, x0: x0 + window] += out
            count[:, y: y + window, x0: x0 + window] += 1
    assert total is not None
    return (total / count)[:, :h, :w]


def predict(run_dir: Path, inputs: list[Path], out: Path | None = None) -> list[dict[str, Any]]:
    """Segment each image; writes ``<name>_mask.png`` (class indices, VOC palette) and ``<name>_overlay.png``.

    ``out`` is the mask file for a single image (``--out mask.png``) or a folder for several.
    """
    run = load_run(run_dir)
    cfg, info, model = run.cfg, run.info, run.model
    multiple = input_multiple(cfg.model)
    results = []
    for path in map(Path, inputs):
        if not path.is_file():
            raise UserError(f"image {str(path)!r} does not exist; give paths to PNG or JPEG files")
        try:
            image = read_image(path)
        except (UnidentifiedImageError, OSError):
            raise UserError(f"{path} is not a readable image file") from None
        with torch.no_grad():
            logits = sliding_window(model, to_tensor(image).to(run.device), cfg.model.window, multiple)
        mask = logits.argmax(0).to(torch.uint8).cpu()
        target = _output_path(path, out, len(inputs))
        save_index_mask(mask.numpy(), target)
        shown = target.with_name(target.stem.removesuffix("_mask") + "_overlay.png")
        picture = overlay(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), mask, info["classes"])
        save_image(picture.float() / 255, str(shown))
        counts = torch.bincount(mask.flatten().long(), minlength=info["num_classes"]).tolist()
        results.append({"file": str(path), "mask": str(target), "overlay": str(shown),
                        "size": [image.shape[1], image.shape[0]],
                        "classes": {info["classes"][k]: round(c / mask.numel(), 4) for k, c in enumerate(counts) if c}})
    return results


def _output_path(path: Path, out: Path | None, count: int) -> Path:
    if out is None:
        return path.with_name(f"{path.stem}_mask.png")
    out = Path(out)
    if out.suffix.lower() == ".png" and count == 1:
        out.parent.mkdir(parents=True, exist_ok=True)
        return out
    out.mkdir(parents=True, exist_ok=True)
    return out / f"{path.stem}_mask.png"

