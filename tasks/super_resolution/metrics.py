"""Super-resolution metrics with the field's convention (EDSR, BasicSR, benchmark tables).

PSNR and SSIM are computed on the luma channel Y of ITU-R BT.601 YCbCr (studio range,
``Y = 16 + 65.481 R + 128.553 G + 24.966 B`` for RGB in [0, 1]), on 8-bit images, with
``scale`` pixels shaved from every border, and averaged per image. Y stays unrounded, as
BasicSR computes it. PSNR and SSIM themselves are torchmetrics' (Gaussian 11x11, sigma 1.5,
K1 = 0.01, K2 = 0.03 for SSIM, as Wang et al. 2004 and the benchmarks).
"""

from __future__ import annotations

import torch
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

#: ITU-R BT.601 luma weights for RGB in [0, 255] (offset 16: studio swing, max 235).
BT601_Y = (65.481 / 255.0, 128.553 / 255.0, 24.966 / 255.0)


def rgb_to_y(image: torch.Tensor) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB in [0, 255] -> ``(N, 1, H, W)`` BT.601 luma in [16, 235]."""
    weights = image.new_tensor(BT601_Y).view(1, 3, 1, 1)
    return 16.0 + (image * weights).sum(1, keepdim=True)


def shave(image: torch.Tensor, border: int) -> torch.Tensor:
    """Drop ``border`` pixels at every edge (the upsampler's border guesses are not scored)."""
    return image[..., border:-border, border:-border] if border > 0 else image


class SRMetrics:
    """Per-image PSNR/SSIM of a model and of the bicubic baseline on the same images.

    ``update`` takes 8-bit images as tensors ``(3, H, W)`` or ``(1, 3, H, W)``; ``compute``
    returns the task's fixed metric names (means over the images seen).
    """

    def __init__(self, shave_border: int) -> None:
        self.border = shave_border
        # The engine evaluates on rank 0 alone, so the metrics must never try to sync.
        local = {"data_range": 255.0, "sync_on_compute": False}
        self.psnr = {k: PeakSignalNoiseRatio(dim=(1, 2, 3), reduction="elementwise_mean", **local)
                     for k in ("y", "y_bicubic", "rgb", "rgb_bicubic")}
        self.ssim = {k: StructuralSimilarityIndexMeasure(**local) for k in ("y", "y_bicubic")}
        self.count = 0

    def _prep(self, image: torch.Tensor) -> torch.Tensor:
        image = image.double().cpu()  # float64 luma: scores agree with a NumPy reference to 1e-5 dB
        return shave(image.unsqueeze(0) if image.dim() == 3 else image, self.border)

    def update(self, sr: torch.Tensor, bicubic: torch.Tensor, hr: torch.Tensor) -> None:
        sr, bicubic, hr = self._prep(sr), self._prep(bicubic), self._prep(hr)
        hr_y = rgb_to_y(hr)
        for suffix, pred in (("", sr), ("_bicubic", bicubic)):
            pred_y = rgb_to_y(pred)
            self.psnr[f"y{suffix}"].update(pred_y, hr_y)
            self.psnr[f"rgb{suffix}"].update(pred, hr)
            # SSIM in float32: 8x faster on CPU than float64, equal to about 1e-6.
            self.ssim[f"y{suffix}"].update(pred_y.float(), hr_y.float())
        self.count += sr.shape[0]

    def compute(self) -> dict[str, float]:
        if not self.count:
            return {}
        out = {f"psnr_{k}": float(m.compute()) for k, m in self.psnr.items()}
        out.update({f"ssim_{k}": float(m.compute()) for k, m in self.ssim.items()})
        out["gain_db"] = out["psnr_y"] - out["psnr_y_bicubic"]
        out["images"] = self.count
        return out


def psnr_y(pred: torch.Tensor, target: torch.Tensor, border: int = 0) -> float:
    """Y-channel PSNR (dB) of one 8-bit RGB image against its reference, ``border`` px shaved."""
    m = SRMetrics(border)
    m.update(pred, pred, target)
    return m.compute()["psnr_y"]
