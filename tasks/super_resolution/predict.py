"""Upscale a user's images with a trained run: whole images of any size, in tiles when large.

``rsuite predict RUN_DIR photo.jpg --out photo_x4.png`` writes the upscaled PNG and, beside
it, ``photo_x4_compare.png`` (bicubic | model). With ``ground_truth=True`` (Python API) each
input is treated as the HR original instead: it is downscaled as the training data was,
upscaled again, scored, and the comparison gains a ground-truth panel.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from tasks.api import load_run
from tasks.core.errors import UserError

from .evaluate import write_compare
from .imaging import downscale, modcrop, read_rgb, save_png, to_float, to_uint8, upscale_bicubic
from .metrics import SRMetrics

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


def predict(run_dir: Path, inputs: list[Path], out: Path | None = None, *, compare: bool = True,
            ground_truth: bool = False, device: str = "auto") -> list[dict[str, Any]]:
    """Upscale each input by the run's scale; returns one record per image (paths, sizes, timing).

    ``compare`` also writes ``<out>_compare.png``; ``ground_truth`` scores against the input
    (see the module docstring) and adds ``psnr_y``/``psnr_y_bicubic`` to the record.
    """
    run = load_run(run_dir, device=device)
    scale, model, dev = int(run.info["scale"]), run.model, run.device
    inputs = [Path(p) for p in inputs]
    results = []
    for path, dest in zip(inputs, _destinations(inputs, Path(out) if out else None, Path(run_dir), scale)):
        image = read_rgb(path)
        hr = modcrop(image, scale) if ground_truth else None
        lr = downscale(hr, scale) if hr is not None else image
        started = time.perf_counter()
        with torch.no_grad():
            sr = to_uint8(model.upscale(to_float(lr).unsqueeze(0).to(dev), tile=model.tile or PREDICT_TILE)[0])
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
