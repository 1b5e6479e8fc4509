"""What every task's predictor shares: turning user inputs into tensors, and batching.

A task's predictor (``Task.make_predictor``) wraps either a run's model or an exported ONNX
file's session with the task's pre- and post-processing, so both give the same structures.
Images arrive as a path, a PIL image, an ``HxWxC`` (or ``HxW``) uint8 array or a ``CxHxW``
tensor (uint8, or float in [0, 1]); :func:`image_tensor` makes all of them the uint8 ``CxHxW``
tensor the task's own file reader would have made.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as TF

from .errors import UserError
from .export import Outputs, as_outputs, run_onnx

PathLike = (str, Path)


def read_image(path: str | Path, channels: int) -> torch.Tensor:
    """A PNG/JPEG file as uint8 ``(channels, H, W)`` (gray or RGB); a one-line error otherwise."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a folder; give image files (e.g. {path}/*.png)")
    if not path.is_file():
        raise UserError(f"image {str(path)!r} does not exist; give paths to PNG or JPEG files")
    try:
        return decode_image(str(path), mode=ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB)
    except RuntimeError:
        pass
    try:  # formats torchvision does not decode (BMP, TIFF, ...)
        from PIL import Image

        with Image.open(path) as im:
            return image_tensor(np.asarray(im.convert("L" if channels == 1 else "RGB")), channels)
    except OSError:
        raise UserError(f"{path} is not a readable image; give PNG or JPEG files") from None


def image_tensor(item: Any, channels: int) -> torch.Tensor:
    """uint8 ``(channels, H, W)`` from a path, PIL image, HWC/HW array or CHW tensor."""
    if isinstance(item, PathLike):
        return read_image(item, channels)
    try:
        from PIL import Image

        if isinstance(item, Image.Image):
            item = np.asarray(item.convert("L" if channels == 1 else "RGB"))
    except ImportError:  # pragma: no cover - Pillow is a dependency
        pass
    if isinstance(item, np.ndarray):
        if item.ndim == 2:
            item = item[..., None]
        if item.ndim != 3:
            raise UserError(f"an image array is HxW or HxWxC, not shape {item.shape}")
        item = torch.from_numpy(np.array(item, copy=True)).permute(2, 0, 1)  # own, writable, contiguous
    if not isinstance(item, torch.Tensor):
        raise UserError(f"cannot read an image from {type(item).__name__}; give a path, a PIL image, an HxWxC "
                        "uint8 array or a CxHxW tensor")
    if item.dim() == 2:
        item = item[None]
    if item.dim() != 3 or item.shape[0] not in (1, 3, 4):
        raise UserError(f"an image tensor is CxHxW with 1, 3 or 4 channels, not shape {tuple(item.shape)}")
    if item.is_floating_point():  # [0, 1] floats, as torchvision's ToTensor makes them
        item = item.clamp(0, 1).mul(255).round().to(torch.uint8)
    elif item.dtype != torch.uint8:
        raise UserError(f"an image tensor is uint8 or float in [0, 1], not {item.dtype}")
    item = item[:3].cpu()
    if item.shape[0] == channels:
        return item.contiguous()
    if channels == 1:
        return TF.rgb_to_grayscale(item)
    return item.expand(channels, -1, -1).contiguous()


def split_batch(x: Any, single_rank: int) -> tuple[list[Any], bool]:
    """``(items, batched)``: a list/tuple, or an array/tensor of one more dimension than one item, is a batch."""
    if isinstance(x, (list, tuple)):
        return list(x), True
    if isinstance(x, (np.ndarray, torch.Tensor)) and x.ndim == single_rank + 1:
        return list(x), True
    return [x], False


def split_images(x: Any) -> tuple[list[Any], bool]:
    """Like :func:`split_batch` for images: ``N x H x W`` (gray stack) and ``N x H x W x C`` arrays,
    ``N x C x H x W`` tensors and lists are batches; one ``H x W [x C]`` array or ``C x H x W`` tensor is not."""
    if isinstance(x, np.ndarray) and (x.ndim == 4 or (x.ndim == 3 and x.shape[-1] not in (1, 3, 4))):
        return list(x), True
    if isinstance(x, torch.Tensor) and (x.ndim == 4 or (x.ndim == 3 and x.shape[0] not in (1, 3, 4))):
        return list(x), True
    return split_batch(x, 99)


def chunks(items: Sequence[Any], size: int | None) -> Iterator[Sequence[Any]]:
    """``items`` in runs of at most ``size`` (all at once when ``None``)."""
    step = size or max(1, len(items))
    for start in range(0, len(items), step):
        yield items[start:start + step]


class TaskPredictor:
    """Pre-process, run and post-process for one task; the model is a run's or an ONNX session.

    Subclasses implement :meth:`prepare` (one input -> what the network takes), :meth:`infer`
    (prepared inputs -> one raw result each) and :meth:`finish` (raw result -> the same dict
    ``rsuite predict`` prints). ``single_rank`` is the rank of one input when it is an array
    (:meth:`split` tells one input from a batch; image tasks use :func:`split_images`).
    """

    single_rank = 3

    def __init__(self, cfg: Any, info: dict[str, Any], device: torch.device, model: nn.Module | None = None,
                 session: Any = None) -> None:
        if (model is None) == (session is None):
            raise ValueError("give a model or an ONNX session")
        self.cfg, self.info, self.device, self.model, self.session = cfg, info, device, model, session
        # an ONNX file exported without --dynamic-batch takes exactly its traced batch size
        self.max_batch: int | None = None
        if session is not None:
            first = session.get_inputs()[0].shape[0]
            self.max_batch = first if isinstance(first, int) else None

    def call(self, *inputs: torch.Tensor) -> Outputs:
        """The network on ``inputs``: the model (no grad, on its device) or the ONNX session (CPU)."""
        if self.session is not None:
            return run_onnx(self.session, inputs)
        with torch.no_grad():
            return tuple(t.cpu() for t in as_outputs(self.model(*(t.to(self.device) for t in inputs))))

    def split(self, x: Any) -> tuple[list[Any], bool]:
        """``(items, batched)``: whether ``x`` is one input or a batch of them."""
        return split_batch(x, self.single_rank)

    def prepare(self, item: Any) -> Any:
        raise NotImplementedError

    def infer(self, prepared: list[Any]) -> list[Any]:
        raise NotImplementedError

    def finish(self, raw: Any, item: Any) -> dict[str, Any]:
        raise NotImplementedError

    def __call__(self, items: list[Any]) -> list[dict[str, Any]]:
        prepared = [self.prepare(x) for x in items]
        return [self.finish(raw, x) for raw, x in zip(self.infer(prepared), items)]


def file_key(item: Any) -> dict[str, str]:
    """``{"file": path}`` for an input given as a path (what ``rsuite predict`` reports), else nothing."""
    return {"file": str(item)} if isinstance(item, PathLike) else {}
