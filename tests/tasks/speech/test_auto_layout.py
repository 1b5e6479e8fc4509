"""``data.dataset=auto``: LibriSpeech folders or NeMo manifests under data.root pick their reader."""

import json

import numpy as np
import pytest
import soundfile as sf

from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.core.layouts import resolve_dataset
from tasks.speech.config import SpeechConfig
from tasks.speech.data import build_data, detect_layout, layouts


def _librispeech(split_dir) -> None:
    chapter = split_dir / "84" / "121"
    chapter.mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i, text in enumerate(["HELLO WORLD", "IT'S A TEST", "GOOD MORNING"]):
        sf.write(chapter / f"84-121-{i:04d}.flac", rng.normal(0, 0.1, 4000 * (i + 1)).astype(np.float32), 16000)
        lines.append(f"84-121-{i:04d} {text}")
    (chapter / "84-121.trans.txt").write_text("\n".join(lines) + "\n")


def _manifests(root) -> None:
    (root / "wav").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for name, texts in (("train", ["hello there", "one two three"]), ("val", ["good bye"])):
        rows = []
        for i, text in enumerate(texts):
            audio = root / "wav" / f"{name}{i}.wav"
            sf.write(audio, rng.normal(0, 0.1, 8000).astype(np.float32), 16000)
            rows.append(json.dumps({"audio_filepath": f"wav/{audio.name}", "duration": 0.5, "text": text}))
        (root / f"{name}.jsonl").write_text("\n".join(rows) + "\n")


def _data(*overrides: str):
    return build_data(load_config(SpeechConfig, None, ["data.speed_perturb=[1.0]", *overrides]))


def _same(auto, explicit, dataset: str) -> None:
    assert auto.info == explicit.info and auto.info["dataset"] == dataset
    assert auto.train.items == explicit.train.items and auto.val.items == explicit.val.items


def test_librispeech_is_detected_and_announced(tmp_path, capsys) -> None:
    _librispeech(tmp_path / "dev-clean")
    assert detect_layout(tmp_path) == detect_layout(tmp_path, "dev-clean") == "librispeech"
    sets = ["data.train_set=dev-clean", "data.val_set=dev-clean"]
    auto = _data(f"data.root={tmp_path}", *sets)
    assert "data.dataset=auto -> librispeech (found dev-clean/84/121/84-121.trans.txt" in capsys.readouterr().err
    assert [u.text for u in auto.val.items] == ["hello world", "it's a test", "good morning"]
    _same(auto, _data("data.dataset=librispeech", f"data.root={tmp_path}", *sets), "librispeech")


def test_nemo_manifest_is_detected(tmp_path) -> None:
    _manifests(tmp_path)
    _librispeech(tmp_path / "other")  # the train_set named decides, not whatever else lies in the root
    assert detect_layout(tmp_path, "train.jsonl") == "manifest"
    sets = ["data.train_set=train.jsonl", "data.val_set=val.jsonl"]
    auto = _data(f"data.root={tmp_path}", *sets)
    assert [u.text for u in auto.train.items] == ["hello there", "one two three"]
    _same(auto, _data("data.dataset=manifest", f"data.root={tmp_path}", *sets), "manifest")
    (tmp_path / "other" / "84" / "121" / "84-121.trans.txt").unlink()
    assert detect_layout(tmp_path) == "manifest"  # no train_set: the root's *.jsonl files are scanned


def test_unknown_or_missing_root_is_one_line_user_error(tmp_path) -> None:
    (tmp_path / "notes.json").write_text(json.dumps({"title": "not a manifest"}) + "\n")
    with pytest.raises(UserError) as err:
        _data(f"data.root={tmp_path}", "data.train_set=notes.json", "data.val_set=notes.json")
    message = str(err.value)
    assert "\n" not in message and "matches no known layout" in message and "data.dataset explicitly" in message
    assert "<split>/<speaker>/<chapter>/*.trans.txt + *.flac (LibriSpeech)" in message
    assert "audio_filepath, duration, text (NeMo manifest)" in message
    with pytest.raises(UserError, match="does not exist"):
        _data(f"data.root={tmp_path / 'nope'}")


def test_auto_without_root_is_the_espeak_corpus() -> None:
    assert load_config(SpeechConfig).data.dataset == "auto"
    assert resolve_dataset("auto", "", "espeak", layouts()) == "espeak"
    assert resolve_dataset("espeak", "/anything", "espeak", layouts()) == "espeak"  # explicit: untouched
