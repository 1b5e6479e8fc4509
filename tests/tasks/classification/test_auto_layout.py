"""``data.dataset=auto``: each layout under data.root picks the loader the explicit name would."""

import gzip
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import cifar

from tasks.classification.config import ClassificationConfig
from tasks.classification.data import LAYOUTS, build_data, detect_layout
from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.core.idx import fashion_mnist_available
from tasks.core.layouts import resolve_dataset


def _data(*overrides: str):
    return build_data(load_config(ClassificationConfig, None, list(overrides)))


def _same(auto, explicit) -> None:
    """Same sizes, same info (the recorded dataset name included) and the same first validation sample."""
    assert (len(auto.train), len(auto.val)) == (len(explicit.train), len(explicit.val))
    assert auto.info == explicit.info
    assert torch.equal(auto.val[0][0], explicit.val[0][0]) and int(auto.val[0][1]) == int(explicit.val[0][1])


def _image_folder(root) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(4):
                Image.fromarray(rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)).save(root / split / cls / f"{i}.png")


def _cifar(root) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in [*((f"data_batch_{i}", 2) for i in range(1, 6)), ("test_batch", 3)]:
        batch = {"data": rng.integers(0, 255, (n, 3 * 32 * 32), dtype=np.uint8), "labels": [i % 10 for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))


def _idx(root) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", 10), ("t10k", 4)):
        for kind, array in (("images-idx3", rng.integers(0, 255, (n, 8, 8), dtype=np.uint8)),
                            ("labels-idx1", (np.arange(n) % 2).astype(np.uint8))):
            header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
            with gzip.open(root / f"{split}-{kind}-ubyte.gz", "wb") as f:
                f.write(header + array.tobytes())


def test_imagefolder_is_detected_and_announced(tmp_path, capsys) -> None:
    _image_folder(tmp_path)
    assert detect_layout(tmp_path) == "imagefolder"
    auto = _data(f"data.root={tmp_path}", "data.image_size=8")
    assert "data.dataset=auto -> imagefolder (found train/<class>/" in capsys.readouterr().err
    explicit = _data("data.dataset=imagefolder", f"data.root={tmp_path}", "data.image_size=8")
    assert auto.info["dataset"] == "imagefolder" and auto.info["classes"] == ["cat", "dog"]
    _same(auto, explicit)


def test_cifar10_is_detected_in_root_or_as_root(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(cifar, "check_integrity", lambda *args, **kwargs: True)  # fake batches: no official md5
    _cifar(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    assert detect_layout(tmp_path) == detect_layout(folder) == "cifar10"
    explicit = _data("data.dataset=cifar10", f"data.root={tmp_path}")
    for root in (tmp_path, folder):
        auto = _data(f"data.root={root}")
        assert len(auto.train) == 10 and len(auto.val) == 3 and auto.info["classes"][0] == "c0"
        _same(auto, explicit)


def test_idx_is_detected(tmp_path) -> None:
    _idx(tmp_path)
    assert detect_layout(tmp_path) == "idx"
    auto = _data(f"data.root={tmp_path}")
    assert auto.info["dataset"] == "idx" and len(auto.train) == 10
    _same(auto, _data("data.dataset=idx", f"data.root={tmp_path}"))


def test_unknown_or_missing_root_is_one_line_user_error(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(UserError) as err:
        _data(f"data.root={tmp_path}")
    message = str(err.value)
    assert "\n" not in message and "matches no known layout" in message and "data.dataset explicitly" in message
    for described in ("train/<class>/ (ImageFolder)", "cifar-10-batches-py (CIFAR-10)",
                      "train-images-idx3-ubyte[.gz] (idx)"):
        assert described in message
    with pytest.raises(UserError, match="does not exist"):
        detect_layout(tmp_path / "nope")


def test_auto_without_root_is_the_embedded_default() -> None:
    cfg = load_config(ClassificationConfig)
    assert cfg.data.dataset == "auto"
    assert resolve_dataset("auto", "", "fashion_mnist", LAYOUTS) == "fashion_mnist"
    assert resolve_dataset("digits", "/anything", "fashion_mnist", LAYOUTS) == "digits"  # explicit: untouched
    if fashion_mnist_available():
        data = _data("data.limit_train=16", "data.limit_val=8")
        assert data.info["dataset"] == "fashion_mnist" and data.info["classes"][0] == "T-shirt/top"
    else:
        with pytest.raises(UserError, match="apt-get install dataset-fashion-mnist"):
            _data()
