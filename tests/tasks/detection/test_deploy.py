"""Detection after training: ONNX/TorchScript parity, the torch.export refusal, the Predictor against predict."""

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import tasks
from tasks.core.export import match_detections
from tasks.detection.predict import predict

TINY = ["data.num_train=8", "data.num_val=4", "data.image_size=64", "data.min_object_size=12",
        "data.max_object_size=24", "data.batch_size=4", "backbone.options.width=0.25", "model.fpn_channels=32",
        "model.score_thresh=0.0", "trainer.max_steps=2", "trainer.eval_every=2", "trainer.progress=false",
        "trainer.threads=1", "trainer.run_name=r"]


def _run(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("RSUITE_CACHE", str(tmp_path / "cache"))
    return tasks.train("detection", [*TINY, f"trainer.runs_dir={tmp_path / 'runs'}"]).dir


def test_export_matches_pytorch_and_torch_export_is_refused(tmp_path, monkeypatch, rsuite) -> None:
    run = _run(tmp_path, monkeypatch)
    for fmt in ("onnx", "torchscript"):
        code, out, err = rsuite("export", str(run), "--format", fmt)
        assert code == 0, err
        path = Path(out.strip().splitlines()[-1])
        record = json.loads(path.with_name(path.name + ".json").read_text())
        assert record["input_names"] == ["image"] and record["input_shapes"] == [[3, "height", "width"]]
        assert record["max_abs_diff"] <= record["tolerance"] and [3, 48, 56] in [c[0] for c in record["checked"]]
    code, out, err = rsuite("export", str(run), "--format", "exported")
    assert code == 2 and "torch.export cannot follow" in err and len(err.strip().splitlines()) == 1
    code, _, err = rsuite("export", str(run), "--dynamic-batch")
    assert code == 2 and "one input at a time" in err


def test_predictor_matches_predict_and_the_onnx_file(tmp_path, monkeypatch, rsuite) -> None:
    run = _run(tmp_path, monkeypatch)
    images = sorted((tmp_path / "cache" / "detection").glob("scenes-*/val/images/*.png"))[:2]
    code, out, err = rsuite("predict", str(run), *map(str, images), "--out", str(tmp_path / "drawn"))
    assert code == 0, err
    printed = [json.loads(line) for line in out.strip().splitlines()]
    p = tasks.Predictor.from_run(run)  # rsuite predict's threshold, 0.5
    assert p(images) == [{k: v for k, v in r.items() if k != "image"} for r in printed]
    p.impl.threshold = 0.0  # an untrained detector scores low: compare every detection
    drawn = predict(run, images, tmp_path / "all", threshold=0.0)
    assert [r["detections"] for r in drawn] == [r["detections"] for r in p(images)]
    assert drawn[0]["detections"]  # score_thresh=0: a hundred boxes to compare
    arrays = [np.asarray(Image.open(x).convert("RGB")) for x in images]
    assert p(arrays) == p([Image.open(x) for x in images]) == p([torch.from_numpy(a).permute(2, 0, 1) for a in arrays])
    assert p(arrays) == [{"detections": r["detections"]} for r in drawn]
    exported, _ = tasks.export(run, "onnx")
    q = tasks.Predictor.from_export(exported)
    for image in images:  # the ONNX file finds the same detections (order-free, within the export tolerance)
        raw_run, raw_file = p.infer([p.prepare(image)])[0], q.infer([q.prepare(image)])[0]
        assert match_detections(raw_run, raw_file) <= 1e-2
