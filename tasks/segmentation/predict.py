"""Segment images with a trained run (``tasks.Predictor``, ``rsuite predict``), and the segmentation export.

Images up to ``model.window`` pixels a side are segmented whole (padded to the output
stride); larger ones in overlapping windows of that size whose logits are averaged, so the
memory needed does not grow with the image. Where the image fits one window the result is
exactly whole-image inference. A run's model and an exported ONNX file go through the same
padding and windows in :class:`SegmentationPredictor`.

``rsuite predict`` writes an index-mask PNG and an overlay per image. The export is the SMP
model on normalised images whose sides are multiples of ``input_multiple`` (``images`` ->
per-pixel class ``logits``), with batch (``--dynamic-batch``), height and width free; padding,
windows and the argmax stay in Python, for runs and ONNX files alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import UnidentifiedImageError
from torch import nn
from torchvision.utils import save_image

from tasks.core.errors import UserError
from tasks.core.export import ExportSpec
from tasks.core.predict import PathLike, TaskPredictor, file_key, image_tensor, split_images

from .config import SegmentationConfig
from .data import build_data, read_image, to_tensor
from .draw import overlay, save_index_mask
from .model import input_multiple

TOLERANCE = 1e-3  # on logits; float32 differences between runtimes are ~1e-5
Net = Callable[[torch.Tensor], torch.Tensor]  # normalised images N x 3 x H x W -> logits N x K x H x W

OVERLAP = 1 / 3  # share of a window its neighbour covers again (mmsegmentation's slide mode uses about this)
WINDOWS_PER_BATCH = 4


def _pad_to(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    return nn.functional.pad(x, (0, w - x.shape[-1], 0, h - x.shape[-2]))


def whole(model: Net, x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Logits ``K x H x W`` of one normalised image ``3 x H x W``, padded to ``multiple`` and cropped back."""
    h, w = x.shape[-2:]
    padded = _pad_to(x, math.ceil(h / multiple) * multiple, math.ceil(w / multiple) * multiple)
    return model(padded[None])[0, :, :h, :w]


def _starts(length: int, window: int, stride: int) -> list[int]:
    starts = list(range(0, max(1, length - window + 1), stride))
    if starts[-1] + window < length:
        starts.append(length - window)  # the last window ends at the border
    return starts


def sliding_window(model: Net, x: torch.Tensor, window: int, multiple: int) -> torch.Tensor:
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


class SegmentationPredictor(TaskPredictor):
    """Image -> ``{"mask": uint8 H x W class indices, "size": [W, H], "classes": {name: share of pixels}}``
    (plus ``"file"`` for a path), by whole-image or sliding-window inference as ``rsuite predict``."""

    split = staticmethod(split_images)  # H x W x C arrays, C x H x W tensors, or stacks of them

    def __init__(self, cfg: SegmentationConfig, info: dict[str, Any], device: torch.device,
                 model: nn.Module | None = None, session: Any = None) -> None:
        super().__init__(cfg, info, device, model, session)
        self.multiple = input_multiple(cfg.model)

    def prepare(self, item: Any) -> torch.Tensor:
        """uint8 ``3 x H x W``; files are read with Pillow, as the training data was."""
        if isinstance(item, PathLike):
            return read_file(Path(item))
        return image_tensor(item, 3)

    def net(self, images: torch.Tensor) -> torch.Tensor:
        """Logits of a batch of normalised images (an ONNX file exported without --dynamic-batch: one by one)."""
        if self.model is not None:
            return self.model(images)
        return torch.cat([self.call(part)[0] for part in images.split(self.max_batch or len(images))])

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        """Float ``K x H x W`` logits of one uint8 ``3 x H x W`` image (on the model's device)."""
        x = to_tensor(image.permute(1, 2, 0).numpy())
        with torch.no_grad():
            return sliding_window(self.net, x.to(self.device if self.model is not None else "cpu"),
                                  self.cfg.model.window, self.multiple)

    def infer(self, prepared: list[torch.Tensor]) -> list[torch.Tensor]:
        # images differ in size: one at a time (the windows of a large one are batched)
        return [self.logits(image).argmax(0).to(torch.uint8).cpu() for image in prepared]

    def finish(self, mask: torch.Tensor, item: Any) -> dict[str, Any]:
        classes = self.info["classes"]
        counts = torch.bincount(mask.flatten().long(), minlength=len(classes)).tolist()
        return {**file_key(item), "mask": mask.numpy(), "size": [mask.shape[1], mask.shape[0]],
                "classes": {classes[k]: round(c / mask.numel(), 4) for k, c in enumerate(counts) if c}}


def read_file(path: Path) -> torch.Tensor:
    """An image file as uint8 ``3 x H x W`` through the training data's reader; one-line errors."""
    if path.is_dir():
        raise UserError(f"{path} is a folder; give image files (e.g. {path}/*.png)")
    if not path.is_file():
        raise UserError(f"image {str(path)!r} does not exist; give paths to PNG or JPEG files")
    try:
        image = read_image(path)
    except (UnidentifiedImageError, OSError):
        raise UserError(f"{path} is not a readable image file") from None
    return torch.from_numpy(image).permute(2, 0, 1).contiguous()


def make_predictor(cfg: SegmentationConfig, info: dict[str, Any], device: torch.device,
                   model: nn.Module | None = None, session: Any = None) -> SegmentationPredictor:
    return SegmentationPredictor(cfg, info, device, model, session)


def example_inputs(cfg: SegmentationConfig, info: dict[str, Any], batch: int = 1) -> list[tuple[torch.Tensor, ...]]:
    """Validation images at two sizes, normalised and cropped or padded (mean colour) to the input multiple.

    The export leaves height and width free, so the second size differs from the first along
    both. Every side is at least twice the multiple: torch.export specialises feature maps of
    one pixel, so its programs take no smaller images (ONNX and TorchScript files do).
    """
    val = build_data(cfg, split="val").val
    if not len(val):
        raise UserError("the run's validation set is empty; the export needs real validation images to check")
    m = input_multiple(cfg.model)
    images = [val[i % len(val)][0] for i in range(2 * batch)]
    first = images[:batch]
    h = max(2 * m, math.ceil(max(x.shape[-2] for x in first) / m) * m)
    w = max(2 * m, math.ceil(max(x.shape[-1] for x in first) / m) * m)

    def other(side: int, step: int) -> int:  # a crop where the image is large enough, else more padding
        return side - step * m if side - step * m >= 2 * m else side + step * m

    sizes = [(h, w), (other(h, 1), other(w, 2))]
    return [(torch.stack([_pad_to(x[:, :sh, :sw], sh, sw) for x in images[k * batch:(k + 1) * batch]]),)
            for k, (sh, sw) in enumerate(sizes)]


def export_spec(cfg: SegmentationConfig, model: nn.Module, info: dict[str, Any]) -> ExportSpec:
    return ExportSpec(model, ["images"], ["logits"], TOLERANCE, dynamic={"images": {2: "height", 3: "width"}})


def predict(run_dir: Path, inputs: list[Path], out: Path | None = None) -> list[dict[str, Any]]:
    """Segment each image; writes ``<name>_mask.png`` (class indices, VOC palette) and ``<name>_overlay.png``.

    ``out`` is the mask file for a single image (``--out mask.png``) or a folder for several.
    Returns the predictor's record per image with the mask's and overlay's paths in place of the mask.
    """
    from tasks.deploy import Predictor

    p = Predictor.from_run(run_dir)
    results = []
    for path in map(Path, inputs):
        image = p.prepare(path)
        record = p.finish(p.infer([image])[0], path)
        target = _output_path(path, out, len(inputs))
        save_index_mask(record["mask"], target)
        shown = target.with_name(target.stem.removesuffix("_mask") + "_overlay.png")
        picture = overlay(image, torch.from_numpy(record["mask"]), p.info["classes"])
        save_image(picture.float() / 255, str(shown))
        results.append({"file": str(path), "mask": str(target), "overlay": str(shown), "size": record["size"],
                        "classes": record["classes"]})
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

