"""Class and probabilities for a user's image files, from a trained run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms import v2

from tasks.api import load_run
from tasks.core.errors import UserError

from .data import eval_transform


def read_image(path: Path, channels: int) -> torch.Tensor:
    if not path.is_file():
        raise UserError(f"image {str(path)!r} does not exist; give paths to PNG or JPEG files")
    try:
        return decode_image(str(path), mode=ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB)
    except RuntimeError:
        raise UserError(f"{path} is not a readable PNG/JPEG image") from None


def predict(run_dir: Path, inputs: list[Path], out: Path | None = None, top_k: int = 3) -> list[dict[str, Any]]:
    """Top-``k`` classes with probabilities per image; written as JSON to ``out`` if given."""
    run = load_run(run_dir)
    info, model = run.info, run.model
    to_model = eval_transform(info)
    resize = v2.Compose([v2.Resize(info["image_size"], antialias=True), v2.CenterCrop(info["image_size"])])
    results = []
    for path in map(Path, inputs):
        image = read_image(path, info["in_channels"])
        if not info.get("resize") and tuple(image.shape[-2:]) != (info["image_size"],) * 2:
            image = resize(image)
        with torch.no_grad():
            probs = model(to_model(image).unsqueeze(0)).softmax(-1)[0]
        values, indices = probs.topk(min(top_k, len(probs)))
        results.append({"file": str(path), "class": info["classes"][int(indices[0])],
                        "top": [{"class": info["classes"][int(i)], "prob": round(float(v), 4)}
                                for v, i in zip(values, indices)]})
    if out is not None:
        Path(out).write_text(json.dumps(results, indent=2))
    return results
