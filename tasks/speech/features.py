"""Audio in, features out: soundfile I/O, cached resampling, log-mel, SpecAugment, speed perturbation.

Audio is read with ``soundfile`` (libsndfile ships in its wheel): torchaudio's own ``load``
needs TorchCodec and FFmpeg, which a fresh machine lacks. Resampling reuses one
``torchaudio.transforms.Resample`` per rate pair, about twice as fast as the functional form
called per utterance.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio
from torch import nn

from tasks.core.errors import UserError

from .config import DataConfig


def read_audio(path: str | Path) -> tuple[torch.Tensor, int]:
    """Mono float waveform ``(samples,)`` and its rate; unreadable or empty files are one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"audio file {str(path)!r} does not exist; give paths to WAV/FLAC/OGG files")
    try:
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{path} is not readable audio ({first}); give WAV, FLAC or OGG files") from None
    if audio.shape[0] == 0:
        raise UserError(f"{path} holds no audio samples; give a non-empty recording")
    return torch.from_numpy(np.ascontiguousarray(audio.mean(axis=1))), int(rate)


@lru_cache(maxsize=16)
def resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    """One cached resampler per rate pair (building the kernel costs more than applying it)."""
    return torchaudio.transforms.Resample(orig, new)


def load_audio(path: str | Path, sample_rate: int) -> torch.Tensor:
    """Mono waveform at ``sample_rate`` (any input rate, any channel count)."""
    audio, rate = read_audio(path)
    return resampler(rate, sample_rate)(audio) if rate != sample_rate else audio


def speed_perturb(audio: torch.Tensor, sample_rate: int, factor: float) -> torch.Tensor:
    """Play ``factor`` times faster (pitch moves too, as in Ko et al. 2015): resample from ``rate*factor``."""
    if factor == 1.0:
        return audio
    return resampler(round(sample_rate * factor), sample_rate)(audio)


class LogMel(nn.Module):
    """Waveform ``(samples,)`` -> normalised log-mel ``(n_mels, frames)``: 25 ms windows, 10 ms hop."""

    def __init__(self, sample_rate: int = 16000, n_mels: int = 64) -> None:
        super().__init__()
        self.hop = sample_rate // 100
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate, n_fft=512 if sample_rate <= 16000 else 1024, win_length=sample_rate * 25 // 1000,
            hop_length=self.hop, n_mels=n_mels)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        feats = torch.log(self.mel(audio) + 1e-6)
        # per-utterance, per-band normalisation: loudness and channel colour stop mattering
        return (feats - feats.mean(-1, keepdim=True)) / (feats.std(-1, keepdim=True) + 1e-5)

    def frames(self, samples: int) -> int:
        return samples // self.hop + 1


class SpecAugment(nn.Module):
    """Park et al. 2019: zero a few random mel bands and time spans (features are zero-mean)."""

    def __init__(self, freq_masks: int, freq_width: int, time_masks: int, time_width: int) -> None:
        super().__init__()
        self.freq = [torchaudio.transforms.FrequencyMasking(freq_width) for _ in range(freq_masks)]
        self.time = [torchaudio.transforms.TimeMasking(time_width, p=0.1) for _ in range(time_masks)]

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        for mask in (*self.freq, *self.time):
            feats = mask(feats)
        return feats


class Featurizer:
    """What one utterance goes through: load, (speed-perturb), log-mel, (SpecAugment)."""

    def __init__(self, cfg: DataConfig, train: bool) -> None:
        self.sample_rate, self.train = cfg.sample_rate, train
        self.logmel = LogMel(cfg.sample_rate, cfg.n_mels)
        self.speeds = list(cfg.speed_perturb) if train else [1.0]
        self.augment = SpecAugment(cfg.freq_masks, cfg.freq_width, cfg.time_masks, cfg.time_width) \
            if train and cfg.spec_augment else None

    def __call__(self, path: str | Path) -> torch.Tensor:
        audio = load_audio(path, self.sample_rate)
        if self.train and self.speeds:
            audio = speed_perturb(audio, self.sample_rate, self.speeds[int(torch.randint(len(self.speeds), ()))])
        feats = self.logmel(audio)
        return self.augment(feats) if self.augment is not None else feats
