"""Settings of the speech task (one dataclass per section)."""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks.core.config import BackboneConfig, OptimConfig, TrainerConfig


@dataclass
class DataConfig:
    """Which audio, and how it becomes features.

    ``dataset``: auto (default: espeak without ``root``, else librispeech or manifest, whichever
    layout is found under ``root``), espeak (embedded default: a corpus synthesised offline
    with eSpeak NG and cached), librispeech (``root/<train_set>/speaker/chapter/*.flac`` + ``*.trans.txt``), or
    manifest (NeMo-style JSON lines ``root/<train_set>``: ``audio_filepath``, ``duration``,
    ``text``; relative audio paths are taken from the manifest's folder).
    """

    dataset: str = "auto"
    root: str = ""
    train_set: str = ""  # librispeech folder / manifest file under root (e.g. train-clean-100)
    val_set: str = ""  # e.g. dev-clean, or val.jsonl
    batch_size: int = 16  # global batch (split over DDP processes)
    strict: bool = False  # true: an unreadable data file is an error, not a counted skip with a warning
    num_train: int = 3000  # espeak: utterances synthesised; other datasets: > 0 keeps a seeded subset
    num_val: int = 300
    sample_rate: int = 16000  # the model's rate; any input rate is resampled to it
    n_mels: int = 64
    max_duration: float = 20.0  # seconds; longer training utterances are skipped
    bucket: bool = True  # length-bucketed training batches (less padding)
    spec_augment: bool = True
    freq_masks: int = 2
    freq_width: int = 8  # mel bins per frequency mask, at most
    time_masks: int = 2
    time_width: int = 20  # frames per time mask, at most (and at most 10 % of the utterance)
    speed_perturb: list[float] = field(default_factory=lambda: [0.9, 1.0, 1.1])


@dataclass
class ModelConfig:
    """CTC head and decoding.

    ``decoder``: greedy (best path), or beam (torchaudio's flashlight-text ``ctc_decoder``).
    ``lexicon``: empty (lexicon-free beam), ``corpus`` (every word of the training transcripts),
    or a lexicon file (``word w o r d |`` per line). ``lm``: empty (none), ``corpus`` (a word
    ``lm_order``-gram estimated from the training transcripts), or a KenLM ARPA/binary file;
    an LM needs a lexicon. Evaluation reports greedy WER/CER beside the beam's.
    """

    dropout: float = 0.0  # before the 1x1 CTC head
    decoder: str = "greedy"
    beam_size: int = 32
    beam_threshold: float = 25.0  # drop hypotheses this far (log-score) below the best
    lexicon: str = ""
    lm: str = ""
    lm_order: int = 3  # lm=corpus: n-gram order
    lm_weight: float = 2.0
    word_score: float = 0.0  # added per emitted word (positive counters the LM's bias to few words)


@dataclass
class SpeechConfig:
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig(name="quartznet5x5"))
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(name="adamw", lr=3e-3, weight_decay=1e-3,
                                                                   schedule="onecycle"))
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
