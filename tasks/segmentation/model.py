"""Any segmentation-models-pytorch architecture on a registry backbone, and SMP's losses.

The encoder is our backbone through :func:`backbones.adapters.smp.encoder_name` (the ``rs-``
encoders, built on the backbone contract), so every ``backbone.*`` option works here too:
``backbone.shortcut=none`` is the plain twin. ``model.loss`` joins loss terms with ``+``,
each optionally weighted (``ce+0.5*dice``); every term honours ``data.ignore_index``.
"""

from __future__ import annotations

import inspect
import re
from functools import lru_cache
from typing import Any

import segmentation_models_pytorch as smp
import torch
from segmentation_models_pytorch import losses as smp_losses
from torch import nn

from backbones.adapters.smp import encoder_name
from tasks.core.backbone import check_backbone, freeze_batch_norm, freeze_stages
from tasks.core.errors import UserError

from .config import ModelConfig, SegmentationConfig

#: the architectures of the pinned SMP; dpt needs a vision-transformer encoder, which no rs- encoder is
ARCHS = tuple(a for a in smp.MODEL_ARCHITECTURES_MAPPING if a != "dpt")
LOSSES = ("ce", "dice", "focal", "lovasz", "jaccard")


def _arch_class(arch: str) -> type[nn.Module]:
    if arch.lower() not in ARCHS:
        raise UserError(f"model.arch={arch!r} is not valid; choose one of: {', '.join(ARCHS)}")
    return smp.MODEL_ARCHITECTURES_MAPPING[arch.lower()]


def _default(arch: str, parameter: str) -> Any:
    """The default of one of SMP's constructor arguments for ``arch`` (``None``: it has no such argument)."""
    param = inspect.signature(_arch_class(arch).__init__).parameters.get(parameter)
    return None if param is None else param.default


def encoder_depth(m: ModelConfig) -> int:
    """``model.encoder_depth``, else the architecture's own (5 for most, 3 for pspnet)."""
    depth = m.encoder_depth or int(_default(m.arch, "encoder_depth"))
    if not 1 <= depth <= 5:
        raise UserError(f"model.encoder_depth={m.encoder_depth} is not valid; choose 1..5 (0 = the architecture's)")
    return depth


def output_stride(m: ModelConfig) -> int:
    """The encoder's output stride: ``model.output_stride``, else the architecture's own default
    (8 for deeplabv3, 16 for deeplabv3plus and pan, 2^depth for the others)."""
    default, deepest = _default(m.arch, "encoder_output_stride"), 2 ** encoder_depth(m)
    if default is None:
        if m.output_stride and m.output_stride != deepest:
            raise UserError(f"model.output_stride={m.output_stride}: model.arch={m.arch} has no dilated encoder; "
                            "leave it 0 or use deeplabv3, deeplabv3plus or pan")
        return deepest
    return min(m.output_stride or int(default), deepest)


def input_multiple(m: ModelConfig) -> int:
    """What image sides must divide by (SMP checks it): the coarsest stride the model reaches."""
    return output_stride(m)


def smp_model(m: ModelConfig, encoder: str, num_classes: int) -> nn.Module:
    """SMP's ``model.arch`` with the configured depth, output stride and options on the SMP encoder ``encoder``.

    Also how the benchmark builds SMP's stock encoders under the very same decoder.
    """
    cls = _arch_class(m.arch)
    kwargs: dict[str, Any] = {"encoder_depth": encoder_depth(m), **m.options}
    stride = output_stride(m)  # also rejects an output stride the architecture cannot give
    if _default(m.arch, "encoder_output_stride") is not None:
        kwargs["encoder_output_stride"] = stride
    return cls(encoder_name=encoder, encoder_weights=None, in_channels=3, classes=num_classes, **kwargs)


def build_model(cfg: SegmentationConfig, info: dict[str, Any]) -> nn.Module:
    """The SMP architecture ``model.arch`` on the ``rs-`` encoder of ``backbone.*``, no downloaded weights.

    ``backbone.frozen_bn`` and ``backbone.trainable_stages`` apply to the encoder's backbone as
    in every task; ``backbone.weights`` is loaded into it by the engine.
    """
    check_backbone(cfg.backbone, "image")
    try:
        name = encoder_name(cfg.backbone.name, **cfg.backbone.create_kwargs())
        model = smp_model(cfg.model, name, info["num_classes"])
    except (ValueError, TypeError, KeyError, AssertionError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"model.arch={cfg.model.arch} on backbone.name={cfg.backbone.name} cannot be built: "
                        f"{first}") from None
    body = model.encoder.model  # the registry backbone inside the rs- encoder
    if cfg.backbone.frozen_bn:
        freeze_batch_norm(body)
    freeze_stages(body, cfg.backbone.trainable_stages)
    return model


class CombinedLoss(nn.Module):
    """Weighted sum of loss terms; :meth:`forward` also returns each term (for the training log)."""

    def __init__(self, terms: list[tuple[float, str, nn.Module]]) -> None:
        super().__init__()
        self.weights = [w for w, _, _ in terms]
        self.names = [n for _, n, _ in terms]
        self.terms = nn.ModuleList(t for _, _, t in terms)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        parts = {name: term(logits, target) for name, term in zip(self.names, self.terms)}
        total = sum(w * parts[name] for w, name in zip(self.weights, self.names))
        return total, parts  # type: ignore[return-value]


def _term(name: str, ignore_index: int) -> nn.Module:
    if name == "ce":
        return nn.CrossEntropyLoss(ignore_index=ignore_index)
    if name == "dice":
        return smp_losses.DiceLoss(smp_losses.MULTICLASS_MODE, ignore_index=ignore_index)
    if name == "jaccard":
        return smp_losses.JaccardLoss(smp_losses.MULTICLASS_MODE, ignore_index=ignore_index)
    if name == "focal":
        return smp_losses.FocalLoss(smp_losses.MULTICLASS_MODE, ignore_index=ignore_index)
    return smp_losses.LovaszLoss(smp_losses.MULTICLASS_MODE, ignore_index=ignore_index)


@lru_cache(maxsize=16)
def build_loss(spec: str, ignore_index: int) -> CombinedLoss:
    """``"ce+0.5*dice"`` -> cross-entropy + 0.5 x SMP's multiclass Dice loss, both ignoring ``ignore_index``."""
    terms = []
    for raw in spec.replace(" ", "").split("+"):
        match = re.fullmatch(r"(?:(\d+(?:\.\d*)?|\.\d+)\*)?([a-z]+)", raw)
        if match is None or match.group(2) not in LOSSES:
            raise UserError(f"model.loss={spec!r}: {raw!r} is not a loss term; join terms of {', '.join(LOSSES)} "
                            "with +, each optionally weighted, e.g. ce+0.5*dice")
        weight = float(match.group(1) or 1.0)
        terms.append((weight, match.group(2), _term(match.group(2), ignore_index)))
    if len({n for _, n, _ in terms}) != len(terms):
        raise UserError(f"model.loss={spec!r} names a term twice; give it one weight instead")
    return CombinedLoss(terms)


def loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor],
         cfg: SegmentationConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The configured loss; logs each term (when there are several) and the batch's pixel accuracy,
    as detached device tensors (the engine reads them only when it logs)."""
    images, masks = batch
    logits = model(images).float()  # SMP's losses take float logits (autocast may give bf16)
    if logits.shape[-2:] != masks.shape[-2:]:
        raise UserError(f"model.arch={cfg.model.arch} gives {logits.shape[-2]}x{logits.shape[-1]} logits for "
                        f"{masks.shape[-2]}x{masks.shape[-1]} images; keep model.encoder_depth at 0 or set "
                        "model.options.upsampling to match it")
    total, parts = build_loss(cfg.model.loss, cfg.data.ignore_index)(logits, masks)
    logs = {name: v.detach() for name, v in parts.items()} if len(parts) > 1 else {}
    valid = masks != cfg.data.ignore_index
    logs["pixel_acc"] = (((logits.argmax(1) == masks) & valid).sum() / valid.sum().clamp_min(1)).detach()
    return total, logs
