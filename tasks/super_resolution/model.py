"""SR network = mean shift + registry body + sub-pixel upsampler + tail conv (EDSR, Lim et al. 2017).

The body is any image backbone of stride 1 (``edsr_baseline``, ``edsr``, ``edsr_tiny``; with
``backbone.norm=batch`` the blocks carry BN as SRResNet's, Ledig et al. 2017; with
``backbone.shortcut=none`` it is the plain twin, without block skips or the long skip).
``model.global_residual`` adds the bicubic upsampling of the input to the output, so the
network only learns the missing detail (VDSR, Kim et al. 2016).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

import backbones
from tasks.core.backbone import build_backbone
from tasks.core.errors import UserError

from .config import SuperResolutionConfig

# ImageNet RGB mean: the mean shift when the data did not provide one.
DEFAULT_MEAN = (0.485, 0.456, 0.406)


class Upsampler(nn.Sequential):
    """Sub-pixel convolution (Shi et al. 2016): conv to ``r*r*C`` channels, then ``PixelShuffle(r)``.

    x2 and x3 are one step; x4 is two x2 steps, as in EDSR (fewer parameters than one x4 step).
    """

    def __init__(self, scale: int, channels: int) -> None:
        if scale not in (2, 3, 4):
            raise UserError(f"scale={scale} is not valid; choose 2, 3 or 4")
        steps = [3] if scale == 3 else [2] * int(math.log2(scale))
        layers: list[nn.Module] = []
        for r in steps:
            layers += [nn.Conv2d(channels, r * r * channels, 3, 1, 1), nn.PixelShuffle(r)]
        super().__init__(*layers)


class SuperResolutionNet(nn.Module):
    """LR image in [0, 1] -> HR image ``scale`` times larger (same range, unclamped while training).

    ``upscale`` runs inference in overlapping tiles so memory stays bounded on large images.
    """

    def __init__(self, body: backbones.Backbone, scale: int, mean: list[float] | tuple[float, ...] = DEFAULT_MEAN,
                 global_residual: bool = False, tile: int = 0, tile_overlap: int = 16) -> None:
        super().__init__()
        if body.feature_info[-1].stride != 1:
            raise UserError(f"{type(body).__name__} downsamples (stride {body.feature_info[-1].stride}); "
                            "super-resolution needs a stride-1 body such as edsr_baseline")
        self.body, self.scale = body, scale
        self.upsample = Upsampler(scale, body.num_features)
        self.tail = nn.Conv2d(body.num_features, body.in_channels, 3, 1, 1)
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1))
        self.global_residual = global_residual
        if global_residual:
            # Start as exactly the bicubic upsampling: the net begins at the baseline and only
            # has to learn the detail (the zero-init idea of Goyal et al. 2017, on the whole net).
            nn.init.zeros_(self.tail.weight)
            nn.init.zeros_(self.tail.bias)
        self.tile, self.tile_overlap = tile, tile_overlap

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        features = self.body(lr - self.mean)[-1]
        out = self.tail(self.upsample(features))
        if self.global_residual:
            # antialias=True selects the a = -0.5 cubic kernel, the one Pillow/MATLAB use.
            base = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False, antialias=True)
            return out + base
        return out + self.mean

    @torch.no_grad()
    def upscale(self, lr: torch.Tensor, tile: int | None = None, overlap: int | None = None) -> torch.Tensor:
        """Inference on ``(N, C, H, W)``: whole image, or ``tile``-sized LR tiles with ``overlap`` context.

        Each tile is run with ``overlap`` extra LR pixels on every side and only its centre is
        kept; when the overlap covers the network's receptive field the result equals
        whole-image inference exactly (BasicSR's ``tile_process`` idea).
        """
        tile = self.tile if tile is None else tile
        overlap = self.tile_overlap if overlap is None else overlap
        h, w = lr.shape[-2:]
        if tile <= 0 or (h <= tile and w <= tile):
            return self(lr)
        s = self.scale
        out = lr.new_zeros((*lr.shape[:-2], h * s, w * s))
        for y in range(0, h, tile):
            for x in range(0, w, tile):
                y0, x0 = max(0, y - overlap), max(0, x - overlap)
                piece = self(lr[..., y0: min(h, y + tile + overlap), x0: min(w, x + tile + overlap)])
                th, tw = min(tile, h - y) * s, min(tile, w - x) * s
                oy, ox = (y - y0) * s, (x - x0) * s
                out[..., y * s: y * s + th, x * s: x * s + tw] = piece[..., oy: oy + th, ox: ox + tw]
        return out


def build_model(cfg: SuperResolutionConfig, info: dict[str, Any]) -> nn.Module:
    """The SR network for ``cfg`` (body from the registry, head from ``cfg.model``, scale from the data)."""
    check_settings(cfg)
    body = build_backbone(cfg.backbone, "image", in_channels=info.get("in_channels", 3))
    net = SuperResolutionNet(body, info["scale"], info.get("mean", DEFAULT_MEAN), cfg.model.global_residual,
                             cfg.model.tile, cfg.model.tile_overlap)
    return net


LOSSES = {"l1": F.l1_loss, "mse": F.mse_loss}


def check_settings(cfg: SuperResolutionConfig) -> None:
    """Loss and patch settings that cannot work, found before any image is read."""
    if cfg.model.loss not in LOSSES:
        raise UserError(f"model.loss={cfg.model.loss!r} is not valid; choose one of: {', '.join(LOSSES)}")
    size, scale = cfg.data.patch_size, cfg.data.scale
    if size % scale:
        raise UserError(f"data.patch_size={size} must divide by data.scale={scale}; "
                        f"use {size - size % scale or scale * 16}")


def unwrap(model: nn.Module) -> nn.Module:
    """The network inside ``torch.compile`` / DDP / EMA wrappers."""
    for attr in ("_orig_mod", "module", "_orig_mod"):
        model = getattr(model, attr, model)
    return model


def loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor],
         cfg: SuperResolutionConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``model.loss``: L1 (EDSR: sharper than MSE) or MSE between the network output and the HR patch."""
    lr, hr = batch
    sr = model(lr)
    value = LOSSES[cfg.model.loss](sr, hr)
    mse = F.mse_loss(sr.detach().float().clamp(0, 1), hr.float())
    return value, {"psnr_rgb": -10.0 * torch.log10(mse.clamp_min(1e-10))}  # a device tensor: no sync per step
