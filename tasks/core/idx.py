"""Reader for the idx format of MNIST, Fashion-MNIST and KMNIST (gzipped or not).

Shared by classification (its embedded default) and detection (whose synthetic scenes are
composed from the same real objects).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from .errors import UserError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path: str | Path) -> np.ndarray:
    """Decode one idx file into an array of its declared dtype and shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise UserError(f"{path} is not an idx file (bad magic number); give MNIST-format files")
    ndim = raw[3]
    dims = np.frombuffer(raw, ">i4", count=ndim, offset=4).astype(int)
    data = np.frombuffer(raw, _DTYPES[raw[2]], offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise UserError(f"{path} is truncated: header says {tuple(dims)}, found {data.size} values")
    return data.reshape(tuple(dims))


def find_idx(root: str | Path, split: str, kind: str) -> Path:
    """``<split>-<kind>-idx?-ubyte[.gz]`` in ``root`` (split: train | t10k, kind: images | labels)."""
    root = Path(root)
    for pattern in (f"{split}-{kind}-idx?-ubyte.gz", f"{split}-{kind}-idx?-ubyte", f"{split}-{kind}.idx*"):
        hits = sorted(root.glob(pattern))
        if hits:
            return hits[0]
    raise UserError(f"no {split} {kind} idx file in {root}; expected e.g. {split}-{kind}-idx3-ubyte.gz")


def load_idx_split(root: str | Path, train: bool) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(N, H, W)`` uint8 and labels ``(N,)`` of the train or test split in ``root``."""
    split = "train" if train else "t10k"
    images = read_idx(find_idx(root, split, "images"))
    labels = read_idx(find_idx(root, split, "labels")).astype(np.int64)
    if len(images) != len(labels):
        raise UserError(f"{root}: {len(images)} images but {len(labels)} labels in the {split} split")
    return images, labels


def fashion_mnist_available(root: str | Path = FASHION_MNIST_DIR) -> bool:
    try:
        find_idx(root, "train", "images")
        return True
    except UserError:
        return False
