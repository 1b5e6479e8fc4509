"""Detection's embedded default: the generated scenes of :mod:`tasks.core.scenes`, as COCO.

The generator is shared with segmentation (which paints the same instance masks into
semantic masks); detection keeps its copy under its own cache folder, where the scenes
have always been, so caches written before the generator moved stay valid.
"""

from __future__ import annotations

from pathlib import Path

from tasks.core import scenes as shared
from tasks.core.scenes import compose_scene, write_split

from .config import DataConfig

__all__ = ["compose_scene", "scenes_root", "write_split"]


def scenes_root(cfg: DataConfig, seed: int) -> Path:
    """The cached scenes dataset for detection's settings, generated on first use."""
    return shared.scenes_root(cfg, seed, task="detection")
