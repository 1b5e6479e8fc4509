"""Super-resolution after training: exports of any image size, and the Predictor against `rsuite predict`."""

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import tasks


def test_exports_take_any_image_size(tiny_sr, rsuite) -> None:
    run = tasks.train("super_resolution", [*tiny_sr, "model.global_residual=true"]).dir  # + antialiased bicubic
    for fmt in ("onnx", "exported"):
        code, out, err = rsuite("export", str(run), "--format", fmt)
        assert code == 0, err
        path = Path(out.strip().splitlines()[-1])
        record = json.loads(path.with_name(path.name + ".json").read_text())
        assert record["input_shapes"] == [[1, 3, "height", "width"]] and record["max_abs_diff"] <= 1e-3
        assert len({tuple(c[0]) for c in record["checked"]}) == 2  # two sizes through one file


def test_predictor_gives_rsuite_predicts_image(tiny_sr, rsuite, tmp_path) -> None:
    run = tasks.train("super_resolution", tiny_sr).dir
    photo = tmp_path / "photo.png"
    Image.effect_noise((30, 22), 50).convert("RGB").save(photo)
    code, out, err = rsuite("predict", str(run), str(photo), "--out", str(tmp_path / "up.png"))
    assert code == 0, err
    printed = json.loads(out.strip().splitlines()[0])
    p = tasks.Predictor.from_run(run)
    result = p(photo)
    with Image.open(printed["out"]) as written:
        assert torch.equal(result["image"], torch.from_numpy(np.asarray(written).copy()).permute(2, 0, 1))
    assert {k: result[k] for k in ("file", "scale", "input_size", "output_size")} == \
        {k: printed[k] for k in ("file", "scale", "input_size", "output_size")}
    array = np.asarray(Image.open(photo))
    for same in p([array, Image.open(photo), torch.from_numpy(array).permute(2, 0, 1)]):
        assert torch.equal(same["image"], result["image"]) and "file" not in same
    exported, _ = tasks.export(run, "onnx")
    deployed = tasks.Predictor.from_export(exported)(photo)
    assert (deployed["image"].int() - result["image"].int()).abs().max() <= 1  # 8-bit rounding of equal floats
