"""Boxes, labels and scores for images (``tasks.Predictor``, ``rsuite predict``), and the detector's export.

``rsuite predict`` also draws the detections on each image (``<name>_detections.png``). The
export is the torchvision detector on one image in [0, 1] (``image`` -> ``boxes``, ``labels``,
``scores``, any image size), through torchvision's ONNX path or TorchScript tracing;
``torch.export`` cannot follow the data-dependent box filtering, so that format is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.utils import save_image

from tasks.core.errors import UserError
from tasks.core.export import ExportSpec, match_detections
from tasks.core.predict import TaskPredictor, file_key, image_tensor, split_images

from .config import DetectionConfig
from .data import build_data
from .draw import draw

TOLERANCE = 1e-2  # pixels of box corners (and score units); float32 runtimes differ by ~1e-4


class SingleImage(nn.Module):
    """A detector on one ``(3, H, W)`` image in [0, 1], returning ``(boxes, labels, scores)`` tensors."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = self.detector([image])[0]
        return out["boxes"], out["labels"], out["scores"]


class DetectionPredictor(TaskPredictor):
    """Image -> ``{"detections": [{"label", "category_id", "score", "box"}, ...]}`` above ``threshold``."""

    split = staticmethod(split_images)  # H x W x C arrays, C x H x W tensors, or stacks of them

    def __init__(self, cfg: Any, info: dict[str, Any], device: torch.device, model: nn.Module | None = None,
                 session: Any = None, threshold: float = 0.5) -> None:
        super().__init__(cfg, info, device, SingleImage(model).eval() if model is not None else None, session)
        self.threshold = threshold

    def prepare(self, item: Any) -> torch.Tensor:
        return image_tensor(item, 3)

    def infer(self, prepared: list[torch.Tensor]) -> list[tuple[torch.Tensor, ...]]:
        # one image at a time, as the detector's own batching pads images to a common size
        return [self.call(image.float() / 255) for image in prepared]

    def finish(self, raw: tuple[torch.Tensor, ...], item: Any) -> dict[str, Any]:
        boxes, labels, scores = raw
        classes, category_ids = self.info["classes"], self.info["category_ids"]
        keep = scores >= self.threshold
        return {**file_key(item), "detections": [
            {"label": classes[int(c)], "category_id": category_ids[int(c) - 1], "score": round(float(s), 4),
             "box": [round(float(v), 1) for v in b]}
            for b, c, s in zip(boxes[keep], labels[keep], scores[keep])]}

    def drawing(self, image: torch.Tensor, raw: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """uint8 image with the detections above the threshold drawn (2x for small images)."""
        boxes, labels, scores = raw
        return draw(image, {"boxes": boxes, "labels": labels, "scores": scores}, self.info["classes"], self.threshold)


def make_predictor(cfg: DetectionConfig, info: dict[str, Any], device: torch.device, model: nn.Module | None = None,
                   session: Any = None, **options: Any) -> DetectionPredictor:
    return DetectionPredictor(cfg, info, device, model, session, **options)


def example_inputs(cfg: DetectionConfig, info: dict[str, Any], batch: int = 1) -> list[tuple[torch.Tensor, ...]]:
    """Two validation images and a crop of another size (the export leaves height and width free)."""
    val = build_data(cfg, split="val").val
    images = [val[i][0] for i in range(min(len(val), 2))]
    h, w = images[0].shape[-2:]
    return [(im,) for im in images] + [(images[0][:, : max(32, h * 3 // 4), : max(32, w * 7 // 8)],)]


def export_spec(cfg: DetectionConfig, model: nn.Module, info: dict[str, Any]) -> ExportSpec:
    return ExportSpec(SingleImage(model), ["image"], ["boxes", "labels", "scores"], TOLERANCE,
                      dynamic={"image": {1: "height", 2: "width"}}, formats=("onnx", "torchscript"),
                      batch_axis=False, legacy_onnx=True, compare=match_detections,
                      refusal="detection exports as --format onnx or torchscript: torch.export cannot follow the "
                              "detectors' data-dependent box filtering")


def predict(run_dir: Path, inputs: list[Path], out: Path | None = None, threshold: float = 0.5) -> list[dict[str, Any]]:
    """Detect objects in each image; writes ``<name>_detections.png`` (into ``out`` if it is a folder)."""
    from tasks.deploy import Predictor

    p = Predictor.from_run(run_dir, threshold=threshold)
    results = []
    for path in map(Path, inputs):
        image = p.prepare(path)
        raw = p.infer([image])[0]
        target = _output_path(path, out, len(inputs))
        save_image(p.drawing(image, raw).float() / 255, str(target))
        record = p.finish(raw, path)
        results.append({"file": record["file"], "image": str(target), "detections": record["detections"]})
    return results


def _output_path(path: Path, out: Path | None, count: int) -> Path:
    if out is None:
        return path.with_name(f"{path.stem}_detections.png")
    out = Path(out)
    if out.suffix.lower() == ".png" and count == 1:
        return out
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder; give a .png name (one input) or a folder")
    if not out.exists() and out.suffix:  # result.jpg: a file name, but not one this command writes
        raise UserError(f"--out {out} is neither a .png name nor a folder; give x.png for one image, or a folder "
                        "name (no suffix) for several")
    out.mkdir(parents=True, exist_ok=True)
    return out / f"{path.stem}_detections.png"
