"""Upscale images with a trained run (``tasks.Predictor``, ``rsuite predict``), and the SR export.

``rsuite predict RUN_DIR photo.jpg --out photo_x4.png`` writes the upscaled PNG and, beside
it, ``photo_x4_compare.png`` (bicubic | model). With ``ground_truth=True`` (Python API) each
input is treated as the HR original instead: it is downscaled as the training data was,
upscaled again, scored, and the comparison gains a ground-truth panel. The export is the
network on an LR image in [0, 1] of any size (``lr`` -> ``sr``); a run's predictor upscales
large images in tiles, an exported file takes each image whole.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tasks.core.errors import UserError
from tasks.core.export import ExportSpec
from tasks.core.predict import TaskPredictor, file_key, image_tensor, split_images

from .config import SuperResolutionConfig
from .data import build_data
from .evaluate import write_compare
from .imaging import downscale, modcrop, save_png, to_float, to_uint8, upscale_bicubic
from .metrics import SRMetrics

TOLERANCE = 1e-3  # on [0, 1] pixel values, a quarter of one 8-bit level

#: LR tile side used by predict when the recipe sets none: bounds memory on large photos.
PREDICT_TILE = 256


def _destinations(inputs: list[Path], out: Path | None, run_dir: Path, scale: int) -> list[Path]:
    """``--out x.png`` names the file for one input; any other ``--out`` (or none) is a folder."""
    if out is not None and out.suffix.lower() == ".png":
        if len(inputs) != 1:
            raise UserError(f"--out {out} names one PNG but {len(inputs)} inputs were given; pass a folder instead")
        return [out]
    folder = out if out is not None else Path(run_dir) / "predictions"
    if folder.exists() and not folder.is_dir():
        raise UserError(f"--out {folder} exists and is not a folder; give a .png file name or a folder")
    return [folder / f"{p.stem}_x{scale}.png" for p in inputs]


class SuperResolutionPredictor(TaskPredictor):
    """LR image -> ``{"image": uint8 (3, sH, sW), "scale", "input_size", "output_size"}`` (``"file"`` for a path)."""

    split = staticmethod(split_images)  # H x W x C arrays, C x H x W tensors, or stacks of them

    def prepare(self, item: Any) -> torch.Tensor:
        return image_tensor(item, 3)

    def infer(self, prepared: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for lr in prepared:  # images differ in size: one at a time
            x = to_float(lr).unsqueeze(0)
            if self.model is not None:
                with torch.no_grad():
                    sr = self.model.upscale(x.to(self.device), tile=self.model.tile or PREDICT_TILE)
            else:
                sr = self.call(x)[0]
            out.append(to_uint8(sr[0]))
        return out

    def finish(self, sr: torch.Tensor, item: Any) -> dict[str, Any]:
        scale = int(self.info["scale"])
        return {**file_key(item), "image": sr, "scale": scale,
                "input_size": [sr.shape[-2] // scale, sr.shape[-1] // scale], "output_size": list(sr.shape[-2:])}


def make_predictor(cfg: SuperResolutionConfig, info: dict[str, Any], device: torch.device,
                   model: nn.Module | None = None, session: Any = None) -> SuperResolutionPredictor:
    return SuperResolutionPredictor(cfg, info, device, model, session)


def example_inputs(cfg: SuperResolutionConfig, info: dict[str, Any], batch: int = 1) -> list[tuple[torch.Tensor, ...]]:
    """Crops of validation LR images at two sizes (the export leaves height and width free)."""
    val = build_data(cfg, split="val").val
    lrs = [val[i][0] for i in range(len(val))]
    if not lrs:
        raise UserError("the run's validation set is empty; the export needs real validation images to check")
    found = []
    for k in range(2):  # a crop of up to 48x64 LR pixels, then a smaller one of another shape
        group = [lrs[(k * batch + i) % len(lrs)] for i in range(batch)]
        h, w = min([48, *(x.shape[-2] for x in group)]), min([64, *(x.shape[-1] for x in group)])
        if k == 1:
            h, w = max(8, h * 3 // 4), max(8, w * 5 // 8)
        found.append((torch.stack([center_crop_hw(x, h, w) for x in group]),))
    return found


def center_crop_hw(image: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The central ``h x w`` window of a ``(C, H, W)`` image."""
    top, left = (image.shape[-2] - h) // 2, (image.shape[-1] - w) // 2
    return image[..., top: top + h, left: left + w]


def export_spec(cfg: SuperResolutionConfig, model: nn.Module, info: dict[str, Any]) -> ExportSpec:
    return ExportSpec(model, ["lr"], ["sr"], TOLERANCE, dynamic={"lr": {2: "height", 3: "width"}})


def predict(run_dir: Path, inputs: list[Path], out: Path | None = None, *, compare: bool = True,
            ground_truth: bool = False, device: str = "auto") -> list[dict[str, Any]]:
    """Upscale each input by the run's scale; returns one record per image (paths, sizes, timing).

    ``compare`` also writes ``<out>_compare.png``; ``ground_truth`` scores against the input
    (see the module docstring) and adds ``psnr_y``/``psnr_y_bicubic`` to the record.
    """
    from tasks.deploy import Predictor

    p = Predictor.from_run(run_dir, device=device)
    scale = int(p.info["scale"])
    inputs = [Path(x) for x in inputs]
    results = []
    for path, dest in zip(inputs, _destinations(inputs, Path(out) if out else None, Path(run_dir), scale)):
        image = p.prepare(path)
        hr = modcrop(image, scale) if ground_truth else None
        lr = downscale(hr, scale) if hr is not None else image
        started = time.perf_counter()
        sr = p.finish(p.infer([lr])[0], path)["image"]
        record: dict[str, Any] = {"file": str(path), "out": str(save_png(sr, dest)), "scale": scale,
                                  "input_size": list(lr.shape[-2:]), "output_size": list(sr.shape[-2:]),
                                  "seconds": round(time.perf_counter() - started, 3)}
        bicubic = upscale_bicubic(lr, scale) if compare or hr is not None else None
        if hr is not None:
            m = SRMetrics(scale)
            m.update(sr, bicubic, hr)
            scores = m.compute()
            record.update({k: round(scores[k], 3) for k in ("psnr_y", "psnr_y_bicubic", "ssim_y", "gain_db")})
        if compare:
            side = min(max(sr.shape[-2:]), 1024)  # the whole image, or its centre when very large
            compare_path = dest.with_name(f"{dest.stem}_compare.png")
            record["compare"] = str(write_compare(bicubic, sr, hr, scale, compare_path, side=side))
        results.append(record)
    return results
