"""Acoustic model = registry 1-D backbone (QuartzNet style) + 1x1 conv CTC head; CTC loss."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from backbones import Backbone
from tasks.core.backbone import build_backbone

from .config import SpeechConfig


class CTCModel(nn.Module):
    """``(features (N, n_mels, T), frames (N,))`` -> ``(logits (N, vocab, T'), frames after striding)``."""

    def __init__(self, backbone: Backbone, vocab_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Conv1d(backbone.num_features, vocab_size, 1)

    def output_lengths(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames out of the backbone: the backbone contract's ``output_lengths`` (ceil over its stride)."""
        return self.backbone.output_lengths(frames)

    def forward(self, feats: torch.Tensor, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.head(self.dropout(self.backbone(feats)[-1]))
        return logits, self.output_lengths(frames).clamp(max=logits.shape[-1])


def build_model(cfg: SpeechConfig, info: dict[str, Any]) -> nn.Module:
    body = build_backbone(cfg.backbone, "sequence", in_channels=info["in_channels"])
    return CTCModel(body, len(info["tokens"]), cfg.model.dropout)


def ctc_loss(logits: torch.Tensor, out_frames: torch.Tensor, targets: torch.Tensor,
             target_lengths: torch.Tensor) -> torch.Tensor:
    """Mean CTC loss per target token (blank = 0); impossible alignments count as zero, not inf."""
    log_probs = logits.float().log_softmax(1).permute(2, 0, 1)  # (T, N, V) as CTCLoss wants
    return nn.functional.ctc_loss(log_probs, targets, out_frames, target_lengths, blank=0,
                                  reduction="mean", zero_infinity=True)


def loss(model: nn.Module, batch: tuple[torch.Tensor, ...], cfg: SpeechConfig) -> tuple[torch.Tensor, dict[str, float]]:
    feats, frames, targets, target_lengths = batch
    logits, out_frames = model(feats, frames)
    return ctc_loss(logits, out_frames, targets, target_lengths), {}
