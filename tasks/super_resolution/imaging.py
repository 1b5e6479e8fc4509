"""8-bit image helpers shared by data, evaluation and prediction.

Images are ``uint8`` tensors ``(3, H, W)`` (RGB). Bicubic resizing is Pillow's
``Image.resize(..., BICUBIC)``: the cubic kernel with ``a = -0.5`` as MATLAB's ``imresize``,
widened by the scale factor when shrinking (antialiasing), on 8-bit images. It is the usual
stand-in for MATLAB in super-resolution benchmarks, both to make LR inputs and for the
"bicubic" baseline row.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from tasks.core.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def to_pil(image: torch.Tensor) -> Image.Image:
    """``uint8 (3, H, W)`` tensor -> Pillow RGB image."""
    return Image.fromarray(image.permute(1, 2, 0).contiguous().numpy(), mode="RGB")


def from_array(array: np.ndarray) -> torch.Tensor:
    """HxW (gray), HxWx3 or HxWx4 array (uint8, or bool/float in [0, 1]) -> ``uint8 (3, H, W)``."""
    if array.dtype != np.uint8:
        array = (np.clip(array.astype(np.float64), 0.0, 1.0) * 255.0).round().astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    return torch.from_numpy(np.array(array[..., :3])).permute(2, 0, 1).contiguous()  # own, writable copy


def read_rgb(path: Path) -> torch.Tensor:
    """A PNG/JPEG/... file as ``uint8 (3, H, W)``; gray and RGBA files become RGB."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"image {str(path)!r} does not exist; give paths to PNG or JPEG files")
    try:
        with Image.open(path) as im:
            return from_array(np.asarray(im.convert("RGB")))
    except OSError:
        raise UserError(f"{path} is not a readable image; give PNG or JPEG files") from None


def save_png(image: torch.Tensor, path: Path) -> Path:
    """Write a ``uint8 (3, H, W)`` tensor as PNG (parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_pil(image.cpu()).save(path, format="PNG")
    return path


def modcrop(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop the bottom/right edge so height and width divide by ``scale`` (benchmark convention)."""
    h, w = image.shape[-2:]
    return image[..., : h - h % scale, : w - w % scale]


def resize_bicubic(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Pillow bicubic resize of a ``uint8 (3, H, W)`` tensor to ``size = (height, width)``."""
    out = to_pil(image).resize((size[1], size[0]), Image.BICUBIC)
    return torch.from_numpy(np.asarray(out).copy()).permute(2, 0, 1).contiguous()


def downscale(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The LR image of ``hr`` (which must divide by ``scale``): antialiased bicubic, 8-bit."""
    h, w = hr.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"HR size {h}x{w} does not divide by scale {scale}; modcrop it first")
    return resize_bicubic(hr, (h // scale, w // scale))


def upscale_bicubic(lr: torch.Tensor, scale: int) -> torch.Tensor:
    """The bicubic baseline: ``lr`` enlarged ``scale`` times, 8-bit."""
    h, w = lr.shape[-2:]
    return resize_bicubic(lr, (h * scale, w * scale))


def to_float(image: torch.Tensor) -> torch.Tensor:
    """``uint8`` -> ``float32`` in [0, 1] (what the network sees)."""
    return image.float().div_(255.0)


def to_uint8(image: torch.Tensor) -> torch.Tensor:
    """Network output in [0, 1] -> ``uint8``, rounded as when the result is saved as PNG."""
    return image.detach().float().clamp(0.0, 1.0).mul(255.0).round().to(torch.uint8).cpu()


def center_crop(image: torch.Tensor, side: int) -> torch.Tensor:
    """Central ``side x side`` window (or the whole extent along a shorter edge)."""
    h, w = image.shape[-2:]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return image[..., top: top + side, left: left + side]


def side_by_side(panels: list[tuple[str, torch.Tensor]], path: Path, gap: int = 6) -> Path:
    """Write ``uint8 (3, H, W)`` panels left to right, pixel for pixel, each labelled at the top.

    No resampling: the point of the picture is to compare pixels (bicubic blur vs. model detail).
    """
    height = max(p.shape[-2] for _, p in panels)
    label = 16
    width = sum(p.shape[-1] for _, p in panels) + gap * (len(panels) - 1)
    canvas = Image.new("RGB", (width, height + label), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = 0
    for title, panel in panels:
        canvas.paste(to_pil(panel.cpu()), (x, label))
        draw.text((x + 3, 2), title, fill=(0, 0, 0))
        x += panel.shape[-1] + gap
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, format="PNG")
    return path
