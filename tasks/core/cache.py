"""Where generated datasets live: ``$RSUITE_CACHE`` or ``~/.cache/residual-suite``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """A folder under the suite's cache (created), e.g. ``cache_dir("detection", "scenes-s0")``."""
    root = Path(os.environ.get("RSUITE_CACHE") or Path.home() / ".cache" / "residual-suite")
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
