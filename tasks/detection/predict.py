"""Draw a trained detector's boxes, labels and scores on the user's images (PNG files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torchvision.io import ImageReadMode, decode_image
from torchvision.utils import save_image

from tasks.api import load_run
from tasks.core.errors import UserError

from .draw import draw


def predict(run_dir: Path, inputs: list[Path], out: Path | None = None, threshold: float = 0.5) -> list[dict[str, Any]]:
    """Detect objects in each image; writes ``<name>_detections.png`` (into ``out`` if it is a folder)."""
    run = load_run(run_dir)
    model, classes, category_ids = run.model, run.info["classes"], run.info["category_ids"]
    results = []
    for path in map(Path, inputs):
        if not path.is_file():
            raise UserError(f"image {str(path)!r} does not exist; give paths to PNG or JPEG files")
        try:
            image = decode_image(str(path), mode=ImageReadMode.RGB)
        except RuntimeError:
            raise UserError(f"{path} is not a readable PNG/JPEG image") from None
        with torch.no_grad():
            pred = model([image.float() / 255])[0]
        target = _output_path(path, out, len(inputs))
        save_image(draw(image, pred, classes, threshold).float() / 255, str(target))
        keep = pred["scores"] >= threshold
        results.append({"file": str(path), "image": str(target), "detections": [
            {"label": classes[int(c)], "category_id": category_ids[int(c) - 1], "score": round(float(s), 4),
             "box": [round(float(v), 1) for v in b]}
            for b, c, s in zip(pred["boxes"][keep], pred["labels"][keep], pred["scores"][keep])]})
    return results


def _output_path(path: Path, out: Path | None, count: int) -> Path:
    if out is None:
        return path.with_name(f"{path.stem}_detections.png")
    out = Path(out)
    if out.suffix.lower() == ".png" and count == 1:
        return out
    out.mkdir(parents=True, exist_ok=True)
    return out / f"{path.stem}_detections.png"
