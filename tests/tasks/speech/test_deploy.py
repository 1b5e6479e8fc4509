"""Speech after training: the acoustic model exported with variable length, the Predictor against predict."""

import json
from pathlib import Path

import tasks
from tasks.speech.features import load_audio


def test_acoustic_model_exports_with_free_length(trained_run, rsuite) -> None:
    for fmt in ("onnx", "exported"):
        code, out, err = rsuite("export", str(trained_run), "--format", fmt)
        assert code == 0, err
        path = Path(out.strip().splitlines()[-1])
        record = json.loads(path.with_name(path.name + ".json").read_text())
        assert record["input_names"] == ["features", "frames"] and record["output_names"] == ["logits", "out_frames"]
        assert record["input_shapes"][0][2] == "time" and record["max_abs_diff"] <= record["tolerance"]
        lengths = {c[0][2] for c in record["checked"]}
        assert len(lengths) == 2  # the shortest and the longest validation utterance


def test_predictor_gives_predicts_transcripts_for_files_and_waveforms(trained_run, speech_cache, rsuite) -> None:
    clips = sorted(speech_cache.rglob("*.wav"))[:2]
    code, out, err = rsuite("predict", str(trained_run), *map(str, clips))
    assert code == 0, err
    printed = [json.loads(line) for line in out.strip().splitlines()]
    p = tasks.Predictor.from_run(trained_run)
    assert p(clips) == printed
    rate = p.info["sample_rate"]
    waves = [load_audio(c, rate) for c in clips]
    assert p([w.numpy() for w in waves]) == [{k: v for k, v in r.items() if k != "file"} for r in printed]
    assert p(waves[0])["transcript"] == printed[0]["transcript"]
    exported, _ = tasks.export(trained_run, "onnx")
    assert [r["transcript"] for r in tasks.Predictor.from_export(exported)(clips)] == [r["transcript"] for r in printed]
