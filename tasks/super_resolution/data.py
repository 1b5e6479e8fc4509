"""Super-resolution data: the embedded photos and the HR/LR folders users bring.

A training sample is a random HR patch and the LR patch at the same place (LR coordinates
times ``scale``), flipped and rotated by the same one of the eight 90-degree symmetries
(albumentations ``D4``, seeded from torch so runs and resumes are reproducible). LR images
come from LR folders when given, otherwise from antialiased bicubic downscaling of the whole
HR image (see :mod:`.imaging`), as the standard benchmarks (DIV2K, Set5, ...) make them.

Validation samples are whole images of different sizes; :func:`collate_pairs` stacks equal
shapes (training patches) and keeps lists otherwise, so one loader setting serves both and
evaluation scores every validation image at full size, as the benchmarks do.

``data.dataset=auto`` (the default) uses the embedded photos when ``data.root`` is empty,
else ``folder`` when :func:`detect_layout` finds DIV2K-style HR folders or a flat folder of
images under the root.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import albumentations as A
import numpy as np
import torch
from torch.utils.data import Dataset

from tasks.core.errors import UserError
from tasks.core.layouts import AUTO, Layout, match_layout, resolve_dataset
from tasks.core.supervised import DataBundle

from .config import DataConfig, SuperResolutionConfig
from .imaging import IMAGE_SUFFIXES, downscale, from_array, modcrop, read_rgb, to_float

DATASETS = (AUTO, "skimage", "folder")
DEFAULT_DATASET = "skimage"  # what `auto` means without data.root: the embedded photos
HR_PREFIXES = ("", "DIV2K_")  # train_HR/ + valid_HR/, or DIV2K's own DIV2K_train_HR/ + DIV2K_valid_HR/
SCALES = (2, 3, 4)

# Photos bundled inside the scikit-image wheel (no pooch download) and scikit-learn's two
# sample images. Validation holds out three colour photos of different kinds (animal fur,
# food on a table, flowers); the grayscale ones (textures, text, coins) only ever train.
SKIMAGE_TRAIN_RGB = ("astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
                     "motorcycle_left", "sklearn_china")
SKIMAGE_TRAIN_GRAY = ("camera", "brick", "grass", "gravel", "moon", "coins", "page", "text", "clock", "cell")
SKIMAGE_VAL = ("chelsea", "coffee", "sklearn_flower")


@dataclass
class Pair:
    """One image: HR as a tensor or a file, and its LR (tensor, file, or ``None`` = make it)."""

    name: str
    hr: torch.Tensor | Path
    lr: torch.Tensor | Path | None = None

    def load(self, scale: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(lr, hr)`` as ``uint8`` tensors, HR modcropped, LR checked against it."""
        hr = modcrop(self.hr if isinstance(self.hr, torch.Tensor) else read_rgb(self.hr), scale)
        if self.lr is None:
            return downscale(hr, scale), hr
        lr = self.lr if isinstance(self.lr, torch.Tensor) else read_rgb(self.lr)
        want = (hr.shape[-2] // scale, hr.shape[-1] // scale)
        if tuple(lr.shape[-2:]) != want:
            raise UserError(f"LR image for {self.name} is {lr.shape[-2]}x{lr.shape[-1]} but HR/{scale} is "
                            f"{want[0]}x{want[1]}; check data.scale and the LR folder")
        return lr, hr


@functools.cache
def _skimage_photo(name: str) -> torch.Tensor:
    """One bundled photo as ``uint8 (3, H, W)`` (grayscale repeated to RGB); cached per process."""
    import warnings

    if name.startswith("sklearn_"):
        from sklearn.datasets import load_sample_image

        return from_array(load_sample_image(f"{name.removeprefix('sklearn_')}.jpg"))
    import skimage.data

    with warnings.catch_warnings():  # skimage warns about unrelated optional fetchers on import
        warnings.simplefilter("ignore")
        array = skimage.data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skimage.data, name)()
    return from_array(array)


def skimage_pairs(cfg: DataConfig, train: bool) -> list[Pair]:
    """The embedded default: fixed train/val split of the photos shipped with scikit-image/-learn."""
    names = (SKIMAGE_TRAIN_RGB + (SKIMAGE_TRAIN_GRAY if cfg.grayscale_train else ())) if train else SKIMAGE_VAL
    return [Pair(n, _skimage_photo(n)) for n in names]


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _lr_folder(root: Path, split: str, scale: int, explicit: str, flat: bool) -> Path | None:
    """The LR folder for ``split`` (train/valid): explicit setting, else the standard layouts."""
    if explicit:
        if not Path(explicit).is_dir():
            raise UserError(f"LR folder {explicit!r} does not exist; fix data.train_lr/data.val_lr or leave it empty")
        return Path(explicit)
    candidates = [root / f"X{scale}"] if flat else [
        root / f"{split}_LR_bicubic" / f"X{scale}", root / f"DIV2K_{split}_LR_bicubic" / f"X{scale}",
        root / f"{split}_LR" / f"X{scale}"]
    return next((c for c in candidates if c.is_dir()), None)


def _pair_with_lr(hr_files: list[Path], lr_dir: Path | None, scale: int) -> list[Pair]:
    if lr_dir is None:
        return [Pair(p.stem, p) for p in hr_files]
    by_stem = {p.stem: p for p in _images_in(lr_dir)}
    pairs = []
    for p in hr_files:
        lr = by_stem.get(f"{p.stem}x{scale}") or by_stem.get(p.stem)  # DIV2K names LR files 0001x2.png
        if lr is None:
            raise UserError(f"no LR image for {p.name} in {lr_dir} (looked for {p.stem}x{scale}.* and {p.stem}.*); "
                            "add it or point data.train_lr/data.val_lr elsewhere")
        pairs.append(Pair(p.stem, p, lr))
    return pairs


def folder_pairs(cfg: DataConfig, train: bool) -> list[Pair]:
    """DIV2K-style ``train_HR/`` + ``valid_HR/`` under ``data.root``, or one flat image folder."""
    if not cfg.root:
        raise UserError("data.dataset=folder needs data.root=<folder with train_HR/ and valid_HR/, or images>")
    root = Path(cfg.root)
    if not root.is_dir():
        raise UserError(f"data.root={cfg.root!r} is not a folder; point it at your HR images")
    split = "train" if train else "valid"
    for prefix in HR_PREFIXES:
        if (root / f"{prefix}train_HR").is_dir() and (root / f"{prefix}valid_HR").is_dir():
            files = _images_in(root / f"{prefix}{split}_HR")
            lr_dir = _lr_folder(root, split, cfg.scale, cfg.train_lr if train else cfg.val_lr, flat=False)
            break
    else:
        files = _images_in(root)
        if cfg.val_every < 2:
            raise UserError(f"data.val_every={cfg.val_every} leaves no training images; use 2 or more")
        files = [p for i, p in enumerate(files) if (i % cfg.val_every == cfg.val_every - 1) != train]
        lr_dir = _lr_folder(root, split, cfg.scale, cfg.train_lr if train else cfg.val_lr, flat=True)
    if not files:
        raise UserError(f"no {split} images (PNG/JPEG) found under {root}; add HR images or lower data.val_every")
    return _pair_with_lr(files, lr_dir, cfg.scale)


def _div2k_probe(root: Path) -> str | None:
    for prefix in HR_PREFIXES:
        if (root / f"{prefix}train_HR").is_dir() and (root / f"{prefix}valid_HR").is_dir():
            return f"{prefix}train_HR/ + {prefix}valid_HR/"
    return None


def _flat_probe(root: Path) -> str | None:
    count = len(_images_in(root))
    return f"{count} images" if count else None


#: the layouts `auto` recognises under data.root, in the order they are tried
LAYOUTS = (
    Layout("folder", "[DIV2K_]train_HR/ + [DIV2K_]valid_HR/", "DIV2K", _div2k_probe),
    Layout("folder", "*.png/*.jpg images", "flat HR folder", _flat_probe),
)


def detect_layout(root: str | Path) -> str:
    """The dataset name (``folder``) when DIV2K-style HR folders or images lie under ``root``.

    Raises :class:`UserError` naming the layouts looked for when none matches, or when
    ``root`` does not exist.
    """
    return match_layout(root, LAYOUTS)[0].dataset


class PatchPairs(Dataset):
    """Random aligned ``(lr, hr)`` patches, ``per_image`` of them per image and epoch.

    In-memory images (the embedded photos) are decoded and downscaled once; file-backed ones
    (DIV2K) are read per sample, so memory stays flat whatever the folder size.
    """

    def __init__(self, pairs: list[Pair], scale: int, patch_size: int, per_image: int, augment: bool) -> None:
        if patch_size % scale:
            raise UserError(f"data.patch_size={patch_size} must divide by data.scale={scale}; "
                            f"use {patch_size - patch_size % scale or scale * 16}")
        self.scale, self.lr_patch, self.per_image = scale, patch_size // scale, max(1, per_image)
        self.pairs = pairs
        self.cache = [p.load(scale) for p in pairs] if all(isinstance(p.hr, torch.Tensor) for p in pairs) else None
        self.augment = A.Compose([A.D4(p=1.0)], additional_targets={"lr": "image"},
                                 is_check_shapes=False) if augment else None

    def __len__(self) -> int:
        return len(self.pairs) * self.per_image

    def source(self, index: int) -> str:
        """The HR image behind patch ``index`` (named when it cannot be read)."""
        return str(self.pairs[index // self.per_image].hr)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = index // self.per_image
        lr, hr = self.cache[i] if self.cache is not None else self.pairs[i].load(self.scale)
        lr, hr = paired_crop(lr, hr, self.scale, self.lr_patch)
        if self.augment is not None:
            lr, hr = self._d4(lr, hr)
        return to_float(lr), to_float(hr)

    def _d4(self, lr: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.augment.set_random_seed(int(torch.randint(0, 2**31 - 1, ())))
        out = self.augment(image=hr.permute(1, 2, 0).numpy(), lr=lr.permute(1, 2, 0).numpy())
        back = [torch.from_numpy(np.ascontiguousarray(out[k])).permute(2, 0, 1).contiguous() for k in ("lr", "image")]
        return back[0], back[1]


def paired_crop(lr: torch.Tensor, hr: torch.Tensor, scale: int, lr_patch: int,
                top: int | None = None, left: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The LR window ``lr_patch`` square at ``(top, left)`` (random if not given) and the HR window over it."""
    h, w = lr.shape[-2:]
    if h < lr_patch or w < lr_patch:
        raise UserError(f"an LR image is {h}x{w}, smaller than the {lr_patch}-pixel LR patch; "
                        "lower data.patch_size")
    if top is None:
        top = int(torch.randint(0, h - lr_patch + 1, ()))
    if left is None:
        left = int(torch.randint(0, w - lr_patch + 1, ()))
    hr_patch = lr_patch * scale
    return (lr[..., top: top + lr_patch, left: left + lr_patch],
            hr[..., top * scale: top * scale + hr_patch, left * scale: left * scale + hr_patch])


class WholePairs(Dataset):
    """Whole ``(lr, hr)`` validation images (optionally centre-cropped), decoded once."""

    def __init__(self, pairs: list[Pair], scale: int, crop: int = 0) -> None:
        self.names = [p.name for p in pairs]
        self.items = []
        for p in pairs:
            lr, hr = p.load(scale)
            side = min(crop // scale, *lr.shape[-2:])
            if crop > 0:  # crop in LR coordinates so the HR window stays aligned
                top, left = (lr.shape[-2] - side) // 2, (lr.shape[-1] - side) // 2
                lr, hr = paired_crop(lr, hr, scale, side, top, left)
            self.items.append((to_float(lr), to_float(hr)))

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.items[index]


def collate_pairs(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[Any, Any]:
    """Stack equal-size samples into tensors; keep lists when sizes differ (whole images)."""
    lrs, hrs = [b[0] for b in batch], [b[1] for b in batch]
    if all(x.shape == lrs[0].shape for x in lrs) and all(x.shape == hrs[0].shape for x in hrs):
        return torch.stack(lrs), torch.stack(hrs)
    return lrs, hrs


def _mean_rgb(pairs: list[Pair], cache: list | None) -> list[float]:
    """Per-channel mean of (up to 16) training HR images: the model's mean shift (EDSR)."""
    images = [hr for _, hr in cache[:16]] if cache is not None else [read_rgb(p.hr) for p in pairs[:16]]
    sums = torch.stack([im.double().mean((1, 2)) for im in images]).mean(0) / 255.0
    return [round(float(v), 4) for v in sums]


def build_data(cfg: SuperResolutionConfig, split: str = "train") -> DataBundle:
    """Train patches, whole validation images and ``info`` (scale, RGB mean, dataset) for ``cfg``.

    ``data.dataset=auto`` is resolved here, once; ``info["dataset"]`` records the name used.
    """
    d = cfg.data
    if d.scale not in SCALES:
        raise UserError(f"data.scale={d.scale} is not valid; choose one of: {', '.join(map(str, SCALES))}")
    if d.dataset not in DATASETS:
        raise UserError(f"data.dataset={d.dataset!r} is not valid; choose one of: {', '.join(DATASETS)}")
    d = dataclasses.replace(d, dataset=resolve_dataset(d.dataset, d.root, DEFAULT_DATASET, LAYOUTS))
    source = skimage_pairs if d.dataset == "skimage" else folder_pairs
    val_pairs = source(d, train=False)
    val_pairs = val_pairs[: d.limit_val] if d.limit_val > 0 else val_pairs
    val = WholePairs(val_pairs, d.scale, d.val_crop)
    info: dict[str, Any] = {"scale": d.scale, "in_channels": 3, "val_names": val.names, "dataset": d.dataset}
    if split != "train":  # evaluation needs no patches (and takes the mean shift from the checkpoint)
        return DataBundle(PatchPairs([], d.scale, d.patch_size, 1, False), val, info, collate_fn=collate_pairs)
    train_pairs = source(d, train=True)
    train_pairs = train_pairs[: d.limit_train] if d.limit_train > 0 else train_pairs
    train = PatchPairs(train_pairs, d.scale, d.patch_size, d.patches_per_image, d.augment)
    info["mean"] = _mean_rgb(train_pairs, train.cache)
    return DataBundle(train, val, info, collate_fn=collate_pairs)
