"""The embedded default corpus: English sentences spoken by eSpeak NG, generated offline from a seed.

``espeakng-loader`` ships ``libespeak-ng`` and its voice data as a wheel; we drive the library
through ctypes (one synthesiser per process, all cores in parallel), resample its 22,050 Hz
output to the model's rate, add seeded white noise and write 16-bit WAV files plus NeMo-style
JSON-lines manifests into the suite's cache. eSpeak NG is GPL-3: it only generates data here.

Validation measures generalisation: its sentences never occur in training, half of it is spoken
with voice variants training never uses, the other half in an accent training never hears.
"""

from __future__ import annotations

import ctypes
import json
import multiprocessing
import os
import random
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from tasks.core.cache import cache_dir
from tasks.core.errors import UserError

from .sentences import split_sentences

VERSION = 1  # bump when the plan or the audio processing changes: a new cache key
ACCENTS = ("en-us", "en-gb-x-rp", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en")
HELD_OUT_ACCENT = "en-gb-scotland"
VARIANTS = ("", "m1", "m2", "m3", "m4", "m6", "m7", "f1", "f2", "f4", "f5", "klatt", "klatt3", "adam",
            "Andy", "Annie", "anika", "aunty", "boris", "david", "ed", "edward", "grandma", "iven", "john",
            "linda", "max", "michel", "paul", "rob", "steph", "victor", "zac", "belinda", "benjamin", "caleb")
HELD_OUT_VARIANTS = ("m5", "m8", "f3", "klatt2", "grandpa", "Lee", "norbert", "shelby")
RATES = (140, 205)  # eSpeak words per minute (default 175)
PITCHES = (25, 75)  # eSpeak pitch 0..99 (default 50)
SNR_DB = (8.0, 40.0)  # white noise; a quarter of the utterances stay clean
_SYNTH_RATE = 22050
_EVENT_CB = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def _espeak_paths() -> tuple[str, str]:
    try:
        import espeakng_loader
    except ImportError:
        raise UserError("the embedded speech corpus needs eSpeak NG: run `.venv/bin/pip install espeakng-loader` "
                        "(or bring data: data.dataset=librispeech|manifest data.root=...)") from None
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


def check_voices(accents: tuple[str, ...] = (*ACCENTS, HELD_OUT_ACCENT),
                 variants: tuple[str, ...] = VARIANTS + HELD_OUT_VARIANTS) -> None:
    """Fail early on a voice or variant the installed data lacks (eSpeak accepts bad variants silently)."""
    data = Path(_espeak_paths()[1])
    installed = {p.name.lower() for p in (data / "lang").rglob("*") if p.is_file()}
    bad = [a for a in accents if a.lower() not in installed]
    bad += [f"+{v}" for v in variants if v and not (data / "voices" / "!v" / v).is_file()]
    if bad:
        raise UserError(f"eSpeak NG data lacks voices {', '.join(bad)}; reinstall espeakng-loader")


class Synthesiser:
    """One eSpeak NG instance (the library is a per-process singleton: one per worker process)."""

    def __init__(self) -> None:
        lib_path, data_path = _espeak_paths()
        self.lib = ctypes.CDLL(lib_path)
        self.chunks: list[np.ndarray] = []
        rate = self.lib.espeak_Initialize(1, 0, data_path.encode(), 0)  # 1 = AUDIO_OUTPUT_RETRIEVAL
        if rate != _SYNTH_RATE:
            raise RuntimeError(f"eSpeak NG initialisation failed (returned {rate})")

        def collect(wav: Any, n: int, events: Any) -> int:
            if n > 0:
                self.chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
            return 0

        self._callback = _EVENT_CB(collect)  # keep a reference: ctypes callbacks die with their object
        self.lib.espeak_SetSynthCallback(self._callback)

    def speak(self, text: str, voice: str, variant: str, rate: int, pitch: int) -> np.ndarray:
        """16-bit mono samples at 22,050 Hz."""
        name = f"{voice}+{variant}" if variant else voice
        if self.lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise RuntimeError(f"eSpeak NG has no voice {name!r}")
        self.lib.espeak_SetParameter(1, rate, 0)  # espeakRATE
        self.lib.espeak_SetParameter(3, pitch, 0)  # espeakPITCH
        self.chunks = []
        data = text.encode()
        self.lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 0, None, None)  # POS_CHARACTER, espeakCHARS_AUTO
        self.lib.espeak_Synchronize()
        return np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)


def plan(seed: int, num_train: int, num_val: int) -> list[dict[str, Any]]:
    """Every utterance's text, voice, variant, rate, pitch and noise, from ``seed`` alone."""
    rng = random.Random(seed)
    train_text, val_text = split_sentences(rng, num_train, num_val)
    specs = []
    for split, texts in (("train", train_text), ("val", val_text)):
        for i, text in enumerate(texts):
            if split == "train":
                voice, variant = rng.choice(ACCENTS), rng.choice(VARIANTS)
            elif i % 2 == 0:  # seen accent, unseen variant
                voice, variant = rng.choice(ACCENTS), rng.choice(HELD_OUT_VARIANTS)
            else:  # unseen accent
                voice, variant = HELD_OUT_ACCENT, rng.choice(VARIANTS + HELD_OUT_VARIANTS)
            snr = None if rng.random() < 0.25 else round(rng.uniform(*SNR_DB), 1)
            specs.append({"id": f"{split}-{i:06d}", "split": split, "text": text, "voice": voice,
                          "variant": variant, "rate": rng.randint(*RATES), "pitch": rng.randint(*PITCHES),
                          "snr_db": snr, "noise_seed": rng.getrandbits(32)})
    return specs


@lru_cache(maxsize=4)
def _resampler(orig: int, new: int) -> Any:
    import torchaudio

    return torchaudio.transforms.Resample(orig, new)


_WORKER: Synthesiser | None = None


def _local_synthesiser() -> Synthesiser:
    """This process's synthesiser: eSpeak NG is initialised once per process (a second init hangs)."""
    global _WORKER
    if _WORKER is None:
        _WORKER = Synthesiser()
    return _WORKER


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    _local_synthesiser()


def _render(job: tuple[dict[str, Any], str, int]) -> dict[str, Any]:
    import soundfile as sf
    import torch

    spec, out_dir, sample_rate = job
    pcm = _local_synthesiser().speak(spec["text"], spec["voice"], spec["variant"], spec["rate"], spec["pitch"])
    audio = _resampler(_SYNTH_RATE, sample_rate)(torch.from_numpy(pcm.astype(np.float32) / 32768.0)).numpy()
    if spec["snr_db"] is not None and audio.size:
        power = float(np.mean(audio**2)) + 1e-12
        noise = np.random.default_rng(spec["noise_seed"]).standard_normal(audio.size).astype(np.float32)
        audio = audio + noise * np.sqrt(power / 10 ** (spec["snr_db"] / 10))
    audio = np.clip(audio, -1.0, 1.0)
    path = Path(out_dir) / "wav" / f"{spec['id']}.wav"
    sf.write(path, audio, sample_rate, subtype="PCM_16")
    keep = {k: v for k, v in spec.items() if k not in ("id", "split", "noise_seed")}
    return {"audio_filepath": f"wav/{path.name}", "duration": round(audio.size / sample_rate, 4), **keep}


def corpus_key(seed: int, num_train: int, num_val: int, sample_rate: int) -> str:
    return f"espeak-v{VERSION}-seed{seed}-train{num_train}-val{num_val}-{sample_rate}hz"


def generate(out_dir: Path, seed: int, num_train: int, num_val: int, sample_rate: int = 16000,
             workers: int = 0) -> Path:
    """Synthesise the corpus into ``out_dir`` (``wav/``, ``train.jsonl``, ``val.jsonl``) in parallel."""
    check_voices()
    out_dir = Path(out_dir)
    (out_dir / "wav").mkdir(parents=True, exist_ok=True)
    specs = plan(seed, num_train, num_val)
    workers = workers or min(len(specs) // 50 + 1, os.cpu_count() or 1)
    jobs = [(s, str(out_dir), sample_rate) for s in specs]
    if workers <= 1:
        _local_synthesiser()
        rows = [_render(j) for j in jobs]
    else:  # spawn: a forked copy of a process that already ran torch threads can deadlock
        with multiprocessing.get_context("spawn").Pool(workers, initializer=_init_worker) as pool:
            rows = pool.map(_render, jobs, chunksize=32)
    for split in ("train", "val"):
        lines = [json.dumps(r) for s, r in zip(specs, rows) if s["split"] == split]
        (out_dir / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return out_dir


def embedded_corpus(seed: int, num_train: int, num_val: int, sample_rate: int = 16000) -> Path:
    """The cached corpus folder for these settings, generated on first use (and only then)."""
    key = corpus_key(seed, num_train, num_val, sample_rate)
    folder = cache_dir("speech") / key
    done = folder / "corpus.json"
    if done.is_file() and json.loads(done.read_text()).get("key") == key:
        return folder
    import shutil
    import sys

    print(f"synthesising the eSpeak NG corpus ({num_train} + {num_val} utterances) into {folder}", file=sys.stderr)
    # built beside the cache and renamed into place when complete: a concurrent reader (another rank,
    # another run) sees no corpus or the whole corpus, never half of it
    tmp = folder.with_name(f".{key}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    generate(tmp, seed, num_train, num_val, sample_rate)
    (tmp / "corpus.json").write_text(json.dumps({"key": key, "num_train": num_train, "num_val": num_val}))
    if folder.exists() and not done.is_file():
        shutil.rmtree(folder, ignore_errors=True)  # a half-written corpus of an older, in-place writer
    try:
        os.replace(tmp, folder)
    except OSError:  # another process renamed its complete corpus first
        shutil.rmtree(tmp, ignore_errors=True)
    return folder
