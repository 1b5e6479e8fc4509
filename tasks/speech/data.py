"""Speech datasets: the synthesised default and the formats users bring, plus padding collation.

Every source becomes a list of :class:`Utterance` (audio path, duration, normalised text);
features are computed per item by :class:`~tasks.speech.features.Featurizer`, so data-loader
workers parallelise them. Validation sets are ordered by duration, which keeps padding low
without a special sampler.

``data.dataset=auto`` (the default) uses the synthesised eSpeak NG corpus when ``data.root``
is empty, else the format :func:`detect_layout` finds under the root: LibriSpeech split
folders (``<split>/<speaker>/<chapter>/*.trans.txt`` + ``*.flac``) or NeMo JSON-lines manifests.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
import torch
from torch.utils.data import Dataset

from tasks.core.errors import UserError
from tasks.core.layouts import AUTO, Layout, first_json_record, first_match, match_layout, resolve_dataset
from tasks.core.supervised import DataBundle

from .config import SpeechConfig
from .features import Featurizer
from .text import TOKENS, Vocabulary, normalize

DATASETS = (AUTO, "espeak", "librispeech", "manifest")
DEFAULT_DATASET = "espeak"  # what `auto` means without data.root: the synthesised corpus
MANIFEST_SUFFIXES = (".json", ".jsonl")


def _librispeech_probe(train_set: str) -> Callable[[Path], str | None]:
    def probe(root: Path) -> str | None:
        split = root / train_set
        if train_set and split.exists():  # the split the run reads decides
            hit = first_match(split, ["*/*/*.trans.txt"]) if split.is_dir() else None
        else:
            hit = first_match(root, ["*/*/*/*.trans.txt"])
        return f"{hit.relative_to(root).as_posix()} (LibriSpeech transcripts)" if hit is not None else None

    return probe


def _is_manifest(path: Path) -> bool:
    row = first_json_record(path) if path.is_file() else None
    return row is not None and "audio_filepath" in row and "text" in row


def _manifest_probe(train_set: str) -> Callable[[Path], str | None]:
    def probe(root: Path) -> str | None:
        split = root / train_set
        if train_set and split.exists():  # the manifest the run reads decides
            candidates = [split] if split.is_file() else []
        else:
            candidates = sorted(p for p in root.iterdir() if p.suffix in MANIFEST_SUFFIXES)
        hit = next((p for p in candidates if _is_manifest(p)), None)
        return f"{hit.relative_to(root).as_posix()} (NeMo manifest)" if hit is not None else None

    return probe


def layouts(train_set: str = "") -> tuple[Layout, ...]:
    """The layouts `auto` recognises under data.root, in the order they are tried.

    When ``train_set`` names an existing folder or file under the root, that split alone
    decides (it is what the run reads); otherwise the root is scanned.
    """
    return (Layout("librispeech", "<split>/<speaker>/<chapter>/*.trans.txt + *.flac", "LibriSpeech",
                   _librispeech_probe(train_set)),
            Layout("manifest", "*.json[l] lines with audio_filepath, duration, text", "NeMo manifest",
                   _manifest_probe(train_set)))


def detect_layout(root: str | Path, train_set: str = "") -> str:
    """The dataset name (librispeech, manifest) whose files lie under ``root`` (or its ``train_set``).

    Raises :class:`UserError` naming the layouts looked for when none matches, or when
    ``root`` does not exist.
    """
    return match_layout(root, layouts(train_set))[0].dataset


@dataclass(frozen=True)
class Utterance:
    path: str
    duration: float
    text: str


def _duration(path: Path) -> float:
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as err:
        raise UserError(f"{path} is not readable audio ({str(err).strip().splitlines()[0]}); "
                        "fix or remove it from the corpus") from None
    return info.frames / info.samplerate


def read_manifest(path: str | Path) -> list[Utterance]:
    """NeMo-style JSON lines: ``audio_filepath`` (absolute or relative to the manifest), ``duration``, ``text``."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"manifest {str(path)!r} does not exist; set data.root and data.train_set/val_set "
                        "to JSON-lines files")
    items = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            audio = Path(row["audio_filepath"])
            text = row["text"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UserError(f"{path}:{n} is not a manifest line; write JSON objects with audio_filepath, "
                            "duration and text") from None
        audio = audio if audio.is_absolute() else path.parent / audio
        duration = float(row["duration"]) if row.get("duration") is not None else _duration(audio)
        items.append(Utterance(str(audio), duration, normalize(text)))
    if not items:
        raise UserError(f"manifest {path} has no utterances; add JSON lines")
    return items


def read_librispeech(folder: str | Path) -> list[Utterance]:
    """A LibriSpeech split: ``speaker/chapter/<id>.flac`` with transcripts in ``*.trans.txt``."""
    folder = Path(folder)
    transcripts = sorted(folder.glob("*/*/*.trans.txt"))
    if not transcripts:
        raise UserError(f"no LibriSpeech transcripts (speaker/chapter/*.trans.txt) under {folder}; "
                        "set data.root and data.train_set/val_set (e.g. train-clean-100, dev-clean)")
    items = []
    for trans in transcripts:
        for line in trans.read_text().splitlines():
            if not line.strip():
                continue
            uid, _, text = line.strip().partition(" ")
            audio = trans.parent / f"{uid}.flac"
            if not audio.is_file():
                raise UserError(f"{trans} names {uid} but {audio} is missing; restore the file or the line")
            items.append(Utterance(str(audio), _duration(audio), normalize(text)))
    return items


def _subset(items: list[Utterance], limit: int, seed: int) -> list[Utterance]:
    if limit <= 0 or limit >= len(items):
        return items
    keep = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed))[:limit]
    return [items[i] for i in sorted(keep.tolist())]


def sources(cfg: SpeechConfig, split: str = "train") -> tuple[list[Utterance], list[Utterance]]:
    """Training (empty when ``split="val"``) and validation utterances for ``cfg.data``.

    ``data.dataset=auto`` is resolved here, once (:func:`build_data` records the name used).
    """
    d = resolved(cfg).data
    if d.dataset == "espeak":
        from .synth import embedded_corpus

        root = embedded_corpus(cfg.seed, d.num_train, d.num_val, d.sample_rate)
        train = read_manifest(root / "train.jsonl") if split == "train" else []
        return train, read_manifest(root / "val.jsonl")
    if d.dataset not in DATASETS:
        raise UserError(f"data.dataset={d.dataset!r} is not valid; choose one of: {', '.join(DATASETS)}")
    if not d.root or not d.train_set or not d.val_set:
        raise UserError(f"data.dataset={d.dataset} needs data.root, data.train_set and data.val_set "
                        "(e.g. data.root=/data/LibriSpeech data.train_set=train-clean-100 data.val_set=dev-clean)")
    reader = read_librispeech if d.dataset == "librispeech" else read_manifest
    train = _subset(reader(Path(d.root) / d.train_set), d.num_train, cfg.seed) if split == "train" else []
    return train, _subset(reader(Path(d.root) / d.val_set), d.num_val, cfg.seed)


def resolved(cfg: SpeechConfig) -> SpeechConfig:
    """``cfg`` with ``data.dataset=auto`` replaced by the dataset it stands for (else ``cfg`` itself)."""
    d = cfg.data
    if d.dataset != AUTO:
        return cfg
    dataset = resolve_dataset(d.dataset, d.root, DEFAULT_DATASET, layouts(d.train_set))
    return dataclasses.replace(cfg, data=dataclasses.replace(d, dataset=dataset))


class SpeechDataset(Dataset):
    """Utterances -> ``(features (n_mels, frames), token ids)``."""

    def __init__(self, items: list[Utterance], featurizer: Featurizer, vocab: Vocabulary) -> None:
        self.items, self.featurizer, self.vocab = items, featurizer, vocab
        self.durations = [u.duration for u in items]  # read by the length-bucketing sampler

    def __len__(self) -> int:
        return len(self.items)

    def source(self, i: int) -> str:
        """The audio file of utterance ``i`` (named when it cannot be read)."""
        return self.items[i].path

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        item = self.items[i]
        return self.featurizer(item.path), torch.tensor(self.vocab.encode(item.text), dtype=torch.long)


PAD_FRAMES = 32  # batches are padded to a multiple of this many frames: few distinct shapes for cuDNN / compile


def collate(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, ...]:
    """Zero-pad past the longest item to a multiple of :data:`PAD_FRAMES`:
    ``(features (N, n_mels, T), frames (N,), targets (N, L), lengths (N,))``."""
    feats, targets = zip(*batch)
    frames = torch.tensor([f.shape[-1] for f in feats])
    lengths = torch.tensor([len(t) for t in targets])
    longest = -(-int(frames.max()) // PAD_FRAMES) * PAD_FRAMES
    padded = feats[0].new_zeros(len(feats), feats[0].shape[0], longest)
    for i, f in enumerate(feats):
        padded[i, :, : f.shape[-1]] = f
    return padded, frames, torch.nn.utils.rnn.pad_sequence(list(targets), batch_first=True), lengths


def build_data(cfg: SpeechConfig, split: str = "train") -> DataBundle:
    """Train/val datasets and ``info`` (vocabulary, rate, mel bins) for ``cfg``."""
    vocab = Vocabulary(TOKENS)
    cfg = resolved(cfg)
    train_items, val_items = sources(cfg, split)
    # CTC needs at least one output frame per target token (two for repeats); at 100 frames/s
    # and stride 2 that is ~50 tokens/s, so only absurd transcripts are dropped here.
    train_items = [u for u in train_items if u.text and u.duration <= cfg.data.max_duration
                   and len(u.text) < u.duration * 40]
    if split == "train" and not train_items:
        raise UserError(f"no usable training utterances (all empty or longer than data.max_duration="
                        f"{cfg.data.max_duration} s); raise data.max_duration or check the transcripts")
    val_items = sorted(val_items, key=lambda u: u.duration)
    info = {"tokens": vocab.tokens, "sample_rate": cfg.data.sample_rate, "n_mels": cfg.data.n_mels,
            "dataset": cfg.data.dataset,
            "in_channels": cfg.data.n_mels, "train_hours": round(sum(u.duration for u in train_items) / 3600, 3)}
    train = SpeechDataset(train_items, Featurizer(cfg.data, train=True), vocab)
    val = SpeechDataset(val_items, Featurizer(cfg.data, train=False), vocab)
    return DataBundle(train, val, info, collate_fn=collate)
