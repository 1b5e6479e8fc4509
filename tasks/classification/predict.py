"""Top-k classes for images (``rsuite predict`` and ``tasks.Predictor``), and what ``rsuite export`` writes.

The predictor takes paths, PIL images, HWC uint8 arrays or CHW tensors; the export is the
classifier on normalised images (``images`` -> ``logits``); pre- and post-processing stay in
Python, in :class:`ClassificationPredictor`, for runs and ONNX files alike.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.transforms import v2

from tasks.core.export import ExportSpec
from tasks.core.predict import TaskPredictor, chunks, file_key, image_tensor, split_images

from .config import ClassificationConfig
from .data import build_data, eval_transform

TOLERANCE = 1e-3  # on logits; float32 differences between runtimes are ~1e-5


class ClassificationPredictor(TaskPredictor):
    """Image -> ``{"class", "top": [{"class", "prob"}, ...]}`` (plus ``"file"`` for a path)."""

    split = staticmethod(split_images)  # H x W x C arrays, C x H x W tensors, or stacks of them

    def __init__(self, cfg: Any, info: dict[str, Any], device: torch.device, model: nn.Module | None = None,
                 session: Any = None, top_k: int = 3) -> None:
        super().__init__(cfg, info, device, model, session)
        self.top_k = top_k
        self.to_model = eval_transform(info)
        size = info["image_size"]
        self.resize = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])

    def prepare(self, item: Any) -> torch.Tensor:
        image = image_tensor(item, self.info["in_channels"])
        if not self.info.get("resize") and tuple(image.shape[-2:]) != (self.info["image_size"],) * 2:
            image = self.resize(image)  # eval_transform resizes ImageFolder runs itself
        return self.to_model(image)

    def infer(self, prepared: list[torch.Tensor]) -> list[torch.Tensor]:
        probs = [self.call(torch.stack(list(part)))[0].float().softmax(-1) for part in chunks(prepared, self.max_batch)]
        return list(torch.cat(probs)) if probs else []

    def finish(self, probs: torch.Tensor, item: Any) -> dict[str, Any]:
        classes = self.info["classes"]
        values, indices = probs.topk(min(self.top_k, len(probs)))
        return {**file_key(item), "class": classes[int(indices[0])],
                "top": [{"class": classes[int(i)], "prob": round(float(v), 4)} for v, i in zip(values, indices)]}


def make_predictor(cfg: ClassificationConfig, info: dict[str, Any], device: torch.device,
                   model: nn.Module | None = None, session: Any = None, **options: Any) -> ClassificationPredictor:
    return ClassificationPredictor(cfg, info, device, model, session, **options)


def example_inputs(cfg: ClassificationConfig, info: dict[str, Any], batch: int = 1) -> list[tuple[torch.Tensor, ...]]:
    """Two batches of validation images, normalised as the model sees them."""
    val = build_data(cfg, split="val").val
    images = [val[i][0] for i in range(min(len(val), 2 * batch))]
    return [(torch.stack(images[i * batch:(i + 1) * batch]),) for i in range(len(images) // batch)]


def export_spec(cfg: ClassificationConfig, model: nn.Module, info: dict[str, Any]) -> ExportSpec:
    return ExportSpec(model, ["images"], ["logits"], TOLERANCE)


def predict(run_dir: Path, inputs: list[Path], out: Path | None = None, top_k: int = 3) -> list[dict[str, Any]]:
    """Top-``k`` classes with probabilities per image; written as JSON to ``out`` if given."""
    from tasks.deploy import Predictor

    results = Predictor.from_run(run_dir, top_k=top_k)([Path(p) for p in inputs])
    if out is not None:
        Path(out).write_text(json.dumps(results, indent=2))
    return results
