"""Segmentation after training: exports with free height and width, and the Predictor against `rsuite predict`.

One tiny U-Net run (and its ONNX export) serves the module: ``model.window=64`` sends the
unseen 75x53 image through sliding windows, the validation images (at most 42x38) go whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

import tasks
from tasks.core.export import json_path
from tasks.segmentation.task import TASK

from .conftest import scene, tiny_settings, write_paired


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> SimpleNamespace:
    """The run, its ONNX export (--dynamic-batch), a validation image and an image of a size never trained on."""
    root = tmp_path_factory.mktemp("seg-deploy")
    data = write_paired(root / "paired")
    run = tasks.train(TASK, [f"data.root={data}", "model.window=64", *tiny_settings(root / "runs")]).dir
    onnx_file, _ = tasks.export(run, "onnx", dynamic_batch=True)
    image, _ = scene(7, width=75, height=53)  # training crops were 32x32, images at most 42x38
    Image.fromarray(image).save(root / "unseen.png")
    return SimpleNamespace(run=run, onnx=onnx_file, val=sorted((data / "val" / "images").glob("*.png"))[0],
                           unseen=root / "unseen.png", out=root / "predicted")


def test_exports_match_pytorch_at_two_sizes(trained, rsuite) -> None:
    record = json.loads(json_path(trained.onnx).read_text())
    assert record["input_names"] == ["images"] and record["output_names"] == ["logits"]
    assert record["input_shapes"] == [["batch", 3, "height", "width"]] and record["max_abs_diff"] <= 1e-3
    checked = [tuple(c[0]) for c in record["checked"]]  # padded to multiples of 32, two sizes, batches of 2 and 1
    assert {c[0] for c in checked} == {1, 2} and len({c[2:] for c in checked}) == 2
    assert all(side % 32 == 0 for c in checked for side in c[2:])
    for fmt in ("torchscript", "exported"):
        code, out, err = rsuite("export", str(trained.run), "--format", fmt)
        assert code == 0, err
        path = Path(out.strip().splitlines()[-1])
        record = json.loads(json_path(path).read_text())
        assert record["input_shapes"] == [[1, 3, "height", "width"]] and record["max_abs_diff"] <= 1e-3
        assert len({tuple(c[0]) for c in record["checked"]}) == 2


def test_predictor_gives_rsuite_predicts_masks(trained, rsuite) -> None:
    images = [trained.val, trained.unseen]
    code, out, err = rsuite("predict", str(trained.run), *map(str, images), "--out", str(trained.out))
    assert code == 0, err
    printed = [json.loads(line) for line in out.strip().splitlines()]
    p = tasks.Predictor.from_run(trained.run)
    results = p(images)
    for result, record in zip(results, printed):
        with Image.open(record["mask"]) as written:
            assert np.array_equal(result["mask"], np.asarray(written))
        assert {k: v for k, v in result.items() if k != "mask"} == {k: record[k] for k in ("file", "size", "classes")}
    assert results[1]["mask"].shape == (53, 75) and results[1]["size"] == [75, 53]  # windows of 64 px
    array = np.array(Image.open(trained.unseen))
    for same in p([array, Image.open(trained.unseen), torch.from_numpy(array).permute(2, 0, 1)]):
        assert np.array_equal(same["mask"], results[1]["mask"]) and "file" not in same
    assert p(array)["classes"] == results[1]["classes"]  # one input, one dict


def test_onnx_file_agrees_with_the_run(trained) -> None:
    p, q = tasks.Predictor.from_run(trained.run), tasks.Predictor.from_export(trained.onnx)
    for path in (trained.val, trained.unseen):
        image = p.prepare(path)
        ran, deployed = p.logits(image), q.logits(image)
        assert (ran - deployed).abs().max() <= 1e-3
        top = ran.topk(2, dim=0).values
        clear = top[0] - top[1] > 1e-3  # pixels whose class no float32 rounding can flip
        assert clear.float().mean() > 0.9 and torch.equal(ran.argmax(0)[clear], deployed.argmax(0)[clear])
    q.impl.max_batch = 1  # as a file exported without --dynamic-batch: the two windows go one by one
    assert torch.equal(q.logits(image), deployed)
    assert q(trained.unseen)["mask"].shape == (53, 75)
