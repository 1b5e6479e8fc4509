"""Corpus synthesis, user data formats, bad audio, bucketing, training, evaluate and predict."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.core.runlog import read_jsonl
from tasks.speech import synth
from tasks.speech.bucketing import LengthBucketSampler
from tasks.speech.config import SpeechConfig
from tasks.speech.data import build_data, read_librispeech, read_manifest
from tasks.speech.features import load_audio, read_audio
from tasks.speech.predict import predict


def test_corpus_plan_holds_out_sentences_variants_and_an_accent() -> None:
    specs = synth.plan(seed=3, num_train=300, num_val=60)
    assert specs == synth.plan(seed=3, num_train=300, num_val=60)
    assert specs != synth.plan(seed=4, num_train=300, num_val=60)
    train = [s for s in specs if s["split"] == "train"]
    val = [s for s in specs if s["split"] == "val"]
    assert not {s["text"] for s in val} & {s["text"] for s in train}
    assert not {s["variant"] for s in train} & set(synth.HELD_OUT_VARIANTS)
    assert synth.HELD_OUT_ACCENT not in {s["voice"] for s in train}
    assert sum(s["voice"] == synth.HELD_OUT_ACCENT for s in val) == 30
    synth.check_voices()  # every voice and variant named exists in the installed data
    with pytest.raises(UserError, match=r"\+zzz"):
        synth.check_voices(variants=("zzz",))


def test_synthesiser_is_deterministic_for_a_seed(tmp_path) -> None:
    a = synth.generate(tmp_path / "a", seed=1, num_train=4, num_val=2, workers=1)
    b = synth.generate(tmp_path / "b", seed=1, num_train=4, num_val=2, workers=1)
    for split in ("train", "val"):
        rows_a, rows_b = read_jsonl(a / f"{split}.jsonl"), read_jsonl(b / f"{split}.jsonl")
        assert [r["text"] for r in rows_a] == [r["text"] for r in rows_b]
        for ra, rb in zip(rows_a, rows_b):
            assert {k: v for k, v in ra.items() if k != "duration"} == {k: v for k, v in rb.items() if k != "duration"}
            assert abs(ra["duration"] - rb["duration"]) < 0.1
            wa, rate = sf.read(a / ra["audio_filepath"])
            wb, _ = sf.read(b / rb["audio_filepath"])
            assert rate == 16000 and ra["duration"] > 0.3
            # eSpeak is not bit-exact: the 10 ms loudness envelopes must agree, not the samples
            n = min(len(wa), len(wb)) // 160 * 160
            env_a, env_b = (np.sqrt((w[:n].reshape(-1, 160) ** 2).mean(1)) for w in (wa, wb))
            assert np.corrcoef(env_a, env_b)[0, 1] > 0.9 and abs(len(wa) - len(wb)) < 1600


def test_bad_audio_is_a_one_line_error_naming_the_file(tmp_path) -> None:
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000)
    corrupt = tmp_path / "corrupt.wav"
    good = tmp_path / "good.wav"
    sf.write(good, np.zeros(1600, np.float32), 16000)
    corrupt.write_bytes(good.read_bytes()[:30])
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio\n")
    for path, needle in ((empty, "no audio samples"), (corrupt, "not readable audio"), (text, "not readable audio"),
                         (tmp_path / "missing.wav", "does not exist")):
        with pytest.raises(UserError, match=needle) as err:
            read_audio(path)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_librispeech_folders_and_manifests(tmp_path) -> None:
    chapter = tmp_path / "dev" / "84" / "121"
    chapter.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i, text in enumerate(["HELLO WORLD", "IT'S A TEST"]):
        sf.write(chapter / f"84-121-{i:04d}.flac", rng.normal(0, 0.1, 8000 * (i + 1)).astype(np.float32), 16000)
        lines.append(f"84-121-{i:04d} {text}")
    (chapter / "84-121.trans.txt").write_text("\n".join(lines) + "\n")
    items = read_librispeech(tmp_path / "dev")
    assert [u.text for u in items] == ["hello world", "it's a test"]
    assert [round(u.duration, 2) for u in items] == [0.5, 1.0]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"audio_filepath": "dev/84/121/84-121-0001.flac", "text": "Hi there!"}) + "\n")
    (item,) = read_manifest(manifest)
    assert item.text == "hi there" and item.duration == pytest.approx(1.0)
    cfg = load_config(SpeechConfig, None, ["data.dataset=librispeech", f"data.root={tmp_path}",
                                           "data.train_set=dev", "data.val_set=dev"])
    data = build_data(cfg)
    feats, target = data.val[0]
    assert feats.shape == (64, 51) and len(target) == len("hello world")
    manifest.write_text("{not json\n")
    with pytest.raises(UserError, match=r"m.jsonl:1"):
        read_manifest(manifest)
    with pytest.raises(UserError, match=r"data\.train_set"):
        build_data(load_config(SpeechConfig, None, ["data.dataset=manifest", f"data.root={tmp_path}"]))


def test_length_buckets_are_tight_resumable_and_split_over_ranks() -> None:
    durations = torch.rand(1000, generator=torch.Generator().manual_seed(0)).mul(9).add(1).tolist()
    sampler = LengthBucketSampler(durations, 10, seed=5)
    sampler.set_epoch(2)
    batches = list(sampler)
    assert len(batches) == sampler.batches_per_epoch() == 100
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = np.mean([max(durations[i] for i in b) - min(durations[i] for i in b) for b in batches])
    assert spread < 1.0  # random batches of 10 would spread ~7 s
    sampler.set_epoch(2, start_batch=40)
    assert list(sampler) == batches[40:]
    sampler.set_epoch(3)
    assert list(sampler) != batches
    ranks = [LengthBucketSampler(durations, 5, seed=5, rank=r, world_size=2) for r in (0, 1)]
    for r in ranks:
        r.set_epoch(2)
    joined = [sorted(a + b) for a, b in zip(*map(list, ranks))]
    assert joined == [sorted(b) for b in batches]


def test_short_training_run_lowers_ctc_loss_and_writes_the_run(trained_run) -> None:
    train = read_jsonl(trained_run / "train.jsonl")
    assert train[-1]["train/loss"] < 0.8 * train[0]["train/loss"]
    evals = read_jsonl(trained_run / "metrics.jsonl")
    assert {"val/wer", "val/cer", "val/loss"} <= set(evals[-1])
    for name in ("config.yaml", "curves.png", "posteriogram.png", "transcripts.txt", "checkpoints/best.pt"):
        assert (trained_run / name).is_file(), name


def test_evaluate_json_and_predict_on_a_44khz_stereo_file(trained_run, tmp_path) -> None:
    out = subprocess.run([sys.executable, "-m", "tasks.cli", "evaluate", str(trained_run), "--json"],
                         capture_output=True, text=True, check=True)
    metrics = json.loads(out.stdout.strip().splitlines()[-1])
    assert metrics["task"] == "speech" and 0 <= metrics["cer"] and 0 <= metrics["wer"]
    source = read_manifest(_val_manifest())[0]
    audio16 = load_audio(source.path, 16000)
    from tasks.speech.features import resampler

    audio44 = resampler(16000, 44100)(audio16).numpy()
    clip = tmp_path / "clip.wav"
    sf.write(clip, np.stack([audio44, 0.5 * audio44], axis=1), 44100)
    (result,) = predict(trained_run, [clip], tmp_path / "out.json")
    assert result["seconds"] == pytest.approx(len(audio16) / 16000, abs=0.01)
    assert isinstance(result["transcript"], str)
    assert json.loads((tmp_path / "out.json").read_text())[0]["file"] == str(clip)
    with pytest.raises(UserError, match=r"notes\.txt"):
        (tmp_path / "notes.txt").write_text("hello")
        predict(trained_run, [tmp_path / "notes.txt"])


def _val_manifest():
    """The session corpus's validation manifest (the ``speech_cache`` fixture set ``RSUITE_CACHE``)."""
    import os
    from pathlib import Path

    return next(Path(os.environ["RSUITE_CACHE"]).glob("speech/*/val.jsonl"))
