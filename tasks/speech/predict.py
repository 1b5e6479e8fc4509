"""Transcribe audio with a trained run (``tasks.Predictor``, ``rsuite predict``), and the acoustic model's export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tasks.core.errors import UserError
from tasks.core.export import ExportSpec
from tasks.core.predict import PathLike, TaskPredictor, file_key

from .config import SpeechConfig
from .data import build_data, collate
from .decode import make_decoder
from .features import LogMel, load_audio
from .text import Vocabulary

TOLERANCE = 1e-3  # on CTC logits; float32 runtimes differ by ~1e-6


class SpeechPredictor(TaskPredictor):
    """Audio -> ``{"transcript", "seconds"}`` (plus ``"file"`` for a path), decoded as ``model.decoder`` says.

    An input is an audio file (any rate, mono or stereo) or a mono waveform at the run's
    ``sample_rate`` (a 1-D array or tensor); each utterance runs alone, so padding never
    changes a transcript.
    """

    single_rank = 1

    def __init__(self, cfg: SpeechConfig, info: dict[str, Any], device: torch.device, model: nn.Module | None = None,
                 session: Any = None) -> None:
        super().__init__(cfg, info, device, model, session)
        self.decode = make_decoder(cfg, Vocabulary(info["tokens"]))
        self.logmel = LogMel(info["sample_rate"], info["n_mels"])

    def prepare(self, item: Any) -> torch.Tensor:
        if isinstance(item, PathLike):
            return load_audio(Path(item), self.info["sample_rate"])
        audio = torch.as_tensor(np.asarray(item) if not isinstance(item, torch.Tensor) else item).float().cpu()
        if audio.dim() != 1:
            raise UserError(f"a waveform is 1-D (mono samples at {self.info['sample_rate']} Hz), not shape "
                            f"{tuple(audio.shape)}; give a file path for other audio")
        return audio

    def infer(self, prepared: list[torch.Tensor]) -> list[tuple[str, float]]:
        out = []
        for audio in prepared:
            feats = self.logmel(audio).unsqueeze(0)
            logits, frames = self.call(feats, torch.tensor([feats.shape[-1]]))
            out.append((self.decode(logits, frames)[0], audio.numel() / self.info["sample_rate"]))
        return out

    def finish(self, raw: tuple[str, float], item: Any) -> dict[str, Any]:
        transcript, seconds = raw
        return {**file_key(item), "transcript": transcript, "seconds": round(seconds, 3)}


def make_predictor(cfg: SpeechConfig, info: dict[str, Any], device: torch.device, model: nn.Module | None = None,
                   session: Any = None) -> SpeechPredictor:
    return SpeechPredictor(cfg, info, device, model, session)


def example_inputs(cfg: SpeechConfig, info: dict[str, Any], batch: int = 1) -> list[tuple[torch.Tensor, ...]]:
    """Validation utterances as ``(features, frames)`` batches of different lengths (frames are free)."""
    val = build_data(cfg, split="val").val
    count = min(len(val), 2 * batch)
    if count < batch:
        raise UserError("the run's validation set is too small to check an export; it needs real utterances")
    # the shortest and the longest utterances, so the two batches differ in length
    order = list(range(batch)) + list(range(len(val) - batch, len(val)))
    items = [val[i] for i in order]
    return [tuple(collate(items[k * batch:(k + 1) * batch])[:2]) for k in range(2)]


def export_spec(cfg: SpeechConfig, model: nn.Module, info: dict[str, Any]) -> ExportSpec:
    """The acoustic model (log-mel features -> CTC logits, output frames); decoding stays outside."""
    return ExportSpec(model, ["features", "frames"], ["logits", "out_frames"], TOLERANCE,
                      dynamic={"features": {2: "time"}})


def predict(run_dir: Path, inputs: list[Path], out: Path | None = None) -> list[dict[str, Any]]:
    """One ``{"file", "transcript", "seconds"}`` per input, decoded as the run's ``model.decoder`` says.

    ``rsuite predict`` prints each as one JSON line (the stdout contract of every task);
    ``out`` also receives the list as one JSON file.
    """
    from tasks.deploy import Predictor

    results = Predictor.from_run(run_dir)([Path(p) for p in inputs])
    if out is not None:
        Path(out).write_text(json.dumps(results, indent=2))
    return results
