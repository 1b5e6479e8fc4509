"""Build a task's backbone from its ``backbone:`` config section, checking the modality first."""

from __future__ import annotations

from typing import Any

import backbones

from .config import BackboneConfig
from .errors import UserError


def build_backbone(cfg: BackboneConfig, modality: str, **defaults: Any) -> backbones.Backbone:
    """``backbones.create(cfg.name, **defaults, **cfg options)``; a backbone of another modality
    (a sequence net for images, say) is a one-line error listing the ones that fit."""
    name = cfg.name
    if name in backbones.names() and backbones.entry(name).modality != modality:
        fitting = backbones.names(modality)
        shown = ", ".join(fitting[:8]) + (" ..." if len(fitting) > 8 else "")
        article = "an" if modality[0] in "aeiou" else "a"
        raise UserError(f"backbone.name={name!r} is a {backbones.entry(name).modality} backbone; "
                        f"this task needs {article} {modality} one: {shown}")
    try:
        return backbones.create(name, **{**defaults, **cfg.create_kwargs()})
    except ValueError as err:
        raise UserError(str(err)) from None
