"""Classification plugin: learning on real data, the loaders users bring, predict."""

import gzip

import numpy as np
import pytest
import torch
from PIL import Image

import tasks
from tasks.classification.config import ClassificationConfig
from tasks.classification.data import build_data
from tasks.classification.task import TASK
from tasks.core.config import load_config
from tasks.core.errors import UserError
from tasks.core.idx import read_idx
from tasks.core.runlog import read_jsonl


def test_one_epoch_learns_and_writes_the_run_folder(tiny_cls) -> None:
    run = tasks.train(TASK, [*tiny_cls, "trainer.max_steps=0", "trainer.epochs=2", "trainer.eval_every=0",
                            "data.limit_train=512", "data.augment=false", "backbone.zero_init_last=false",
                            "optim.lr=0.05"]).dir
    evals = read_jsonl(run / "metrics.jsonl")
    assert [e["step"] for e in evals] == [16, 32]  # 512 samples / batch 32 = 16 steps per epoch
    train = read_jsonl(run / "train.jsonl")
    assert train[-1]["train/loss"] < train[0]["train/loss"]
    for name in ("config.yaml", "curves.png", "confusion.png", "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    assert any((run / "tb").iterdir())
    metrics = tasks.evaluate(run)
    assert metrics["top1"] > 0.2 and metrics["loss"] < 2.2  # 10 classes: chance is 0.1 and ln 10 = 2.30
    assert (run / "eval.json").is_file()


def _write_idx(path, array: np.ndarray) -> None:
    code = {np.uint8: 0x08}[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def test_idx_loader_reads_any_mnist_format_folder(tmp_path) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("t10k", 12)):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 12, 12), dtype=np.uint8))
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", (np.arange(n) % 3).astype(np.uint8))
    assert read_idx(tmp_path / "train-images-idx3-ubyte.gz").shape == (40, 12, 12)
    cfg = load_config(ClassificationConfig, None, ["data.dataset=idx", f"data.root={tmp_path}"])
    data = build_data(cfg)
    assert len(data.train) == 40 and len(data.val) == 12 and data.info["num_classes"] == 3
    image, _ = data.train[0]
    assert image.shape == (1, 12, 12) and image.dtype == torch.float32


def test_bad_idx_file_is_one_line(tmp_path) -> None:
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"not idx at all")
    with pytest.raises(UserError, match="bad magic"):
        read_idx(tmp_path / "train-images-idx3-ubyte")


def test_imagefolder_train_and_predict(tmp_path) -> None:
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("val", 4)):
        for cls, color in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
            (tmp_path / split / cls).mkdir(parents=True)
            for i in range(n):
                pixels = np.clip(np.array(color) + rng.integers(-20, 20, (20, 24, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(tmp_path / split / cls / f"{i}.png")
    run = tasks.train(TASK, ["data.dataset=imagefolder", f"data.root={tmp_path}", "data.image_size=16",
                            "data.batch_size=8", "backbone.name=resnet20", "trainer.max_steps=2",
                            "trainer.eval_every=2", "trainer.progress=false", f"trainer.runs_dir={tmp_path / 'r'}",
                            "trainer.run_name=f"]).dir
    from tasks.classification.predict import predict

    result = predict(run, [tmp_path / "val" / "red" / "0.png"])
    assert result[0]["class"] in ("red", "blue") and len(result[0]["top"]) == 2


def test_missing_data_sources_say_what_to_do(tmp_path) -> None:
    for overrides, needle in (
        (["data.dataset=fashion_mnist", f"data.root={tmp_path / 'none'}"], "apt-get install dataset-fashion-mnist"),
        (["data.dataset=cifar10", f"data.root={tmp_path}"], "cifar-10-python"),
        (["data.dataset=imagefolder", f"data.root={tmp_path}"], "one folder per class"),
        (["data.dataset=mnistt"], "choose one of"),
    ):
        with pytest.raises(UserError, match=needle):
            build_data(load_config(ClassificationConfig, None, overrides))


def test_digits_fallback_is_real_and_split() -> None:
    data = build_data(load_config(ClassificationConfig, None, ["data.dataset=digits"]))
    assert len(data.train) + len(data.val) == 1797 and data.info["image_size"] == 8
