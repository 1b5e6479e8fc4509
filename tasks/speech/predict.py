"""Transcribe a user's audio files (any sample rate, mono or stereo) with a trained run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tasks.api import load_run

from .decode import make_decoder
from .features import LogMel, load_audio
from .text import Vocabulary


def predict(run_dir: Path, inputs: list[Path], out: Path | None = None) -> list[dict[str, Any]]:
    """One ``{"file", "transcript", "seconds"}`` per input; written as JSON to ``out`` if given."""
    run = load_run(run_dir)
    info, model = run.info, run.model
    vocab = Vocabulary(info["tokens"])
    decode = make_decoder(run.cfg.model, vocab)
    logmel = LogMel(info["sample_rate"], info["n_mels"])
    results = []
    for path in map(Path, inputs):
        audio = load_audio(path, info["sample_rate"])
        feats = logmel(audio).unsqueeze(0)
        with torch.no_grad():
            logits, frames = model(feats, torch.tensor([feats.shape[-1]]))
        results.append({"file": str(path), "transcript": decode(logits, frames)[0],
                        "seconds": round(audio.numel() / info["sample_rate"], 3)})
    if out is not None:
        Path(out).write_text(json.dumps(results, indent=2))
    return results
