"""Classification after training: export parity in every format, and the Predictor against `rsuite predict`."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

import tasks
from tasks.classification import predict as cls_predict
from tasks.classification.data import build_data


def _val_images(run: Path, count: int) -> list[torch.Tensor]:
    """uint8 ``(C, H, W)`` validation images of the run's data."""
    val = build_data(tasks.load_run(run).cfg, split="val").val
    base, order = (val.dataset, val.indices) if hasattr(val, "indices") else (val, range(len(val)))
    return [base.images[i] for i in list(order)[:count]]


def _record(path: Path) -> dict:
    return json.loads(path.with_name(path.name + ".json").read_text())


def test_export_in_every_format_matches_pytorch(tiny_cls, rsuite, monkeypatch) -> None:
    run = tasks.train("classification", tiny_cls).dir
    for fmt in ("onnx", "torchscript", "exported"):
        code, out, err = rsuite("export", str(run), "--format", fmt)
        assert code == 0, err
        path = Path(out.strip().splitlines()[-1])
        record = _record(path)
        assert path.is_file() and record["format"] == fmt and record["input_names"] == ["images"]
        assert 0 <= record["max_abs_diff"] <= record["tolerance"] == cls_predict.TOLERANCE
        assert record["input_shapes"] == [[1, *record["checked"][0][0][1:]]] and len(record["checked"]) == 2
        assert record["opset"] == (18 if fmt == "onnx" else None)
        assert f"max_abs_diff {record['max_abs_diff']:.3g}" in out
    onnx.checker.check_model(str(run / "export" / "model.onnx"))
    monkeypatch.setattr(cls_predict, "TOLERANCE", -1.0)  # no difference passes: the failure path
    code, out, err = rsuite("export", str(run), "--format", "torchscript", "--out", str(run / "failed.pt"))
    assert code == 2 and "self-check failed: max_abs_diff" in err and len(err.strip().splitlines()) == 1
    assert not (run / "failed.pt").exists() and out == ""


def test_predictor_gives_rsuite_predicts_results_for_every_input_kind(tiny_cls, rsuite, tmp_path) -> None:
    run = tasks.train("classification", tiny_cls).dir
    images = _val_images(run, 3)
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(image.permute(1, 2, 0).squeeze(-1).numpy()).save(paths[-1])
    code, out, err = rsuite("predict", str(run), *map(str, paths))
    assert code == 0, err
    printed = [json.loads(line) for line in out.strip().splitlines()]
    p = tasks.Predictor.from_run(run)
    assert p([str(x) for x in paths]) == printed and p(paths[0]) == printed[0]
    bare = [{k: v for k, v in r.items() if k != "file"} for r in printed]
    assert p([Image.open(x) for x in paths]) == bare
    assert p(np.stack([im.permute(1, 2, 0).numpy() for im in images])) == bare  # N x H x W x C uint8
    assert p(torch.stack(images)) == bare and p(torch.stack(images).float() / 255) == bare  # N x C x H x W
    assert p(images[1]) == bare[1] and len(p([])) == 0
    exported, record = tasks.export(run, "onnx", dynamic_batch=True, opset=17)
    assert record["input_shapes"][0][0] == "batch" and record["opset"] == 17
    assert [c[0][0] for c in record["checked"]] == [2, 2, 1]  # one file, two batch sizes
    deployed = tasks.Predictor.from_export(exported)(paths)
    assert [r["class"] for r in deployed] == [r["class"] for r in printed]
    for got, want in zip(deployed, printed):
        assert [t["prob"] for t in got["top"]] == pytest.approx([t["prob"] for t in want["top"]], abs=2e-4)
