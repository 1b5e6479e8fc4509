"""``data.dataset=auto``: pick a task's dataset loader from what lies under ``data.root``.

Each task lists the folder layouts its loaders read as :class:`Layout` probes (in priority
order) and exposes ``detect_layout(root) -> str``. :func:`resolve_dataset` runs once when the
task builds its data: an explicit ``data.dataset`` passes through untouched, ``auto`` without
a root becomes the task's embedded offline default (so the default recipes behave as they
did before ``auto`` existed), and ``auto`` with a root becomes the first matching layout's
dataset name, announced on stderr so the user sees what was chosen.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError

AUTO = "auto"
_MAX_LINE = 1 << 16  # longest manifest line read while probing


@dataclass(frozen=True)
class Layout:
    """One recognisable folder layout.

    ``probe(root)`` returns what it found under ``root`` (a short phrase for the log line,
    e.g. ``"train/<class>/"``) or ``None``; ``looks_for`` and ``label`` describe the layout
    in the error shown when nothing matches (``"train/<class>/ (ImageFolder)"``).
    """

    dataset: str
    looks_for: str
    label: str
    probe: Callable[[Path], str | None]

    def describe(self) -> str:
        return f"{self.looks_for} ({self.label})"


def match_layout(root: str | Path, layouts: Sequence[Layout]) -> tuple[Layout, str]:
    """The first layout found under ``root`` and what was found; a :class:`UserError` naming them all if none.

    Used by every task's ``detect_layout`` so the "does not exist" and "matches no known
    layout" messages read the same everywhere.
    """
    path = Path(root)
    if not path.exists():
        raise UserError(f"data.root={root} does not exist; point data.root at your dataset folder")
    for layout in layouts:
        found = layout.probe(path) if path.is_dir() else None
        if found is not None:
            return layout, found
    looked = ", ".join(layout.describe() for layout in layouts)
    raise UserError(f"data.root={root} matches no known layout; looked for {looked}; "
                    "or set data.dataset explicitly")


def resolve_dataset(dataset: str, root: str, default: str, layouts: Sequence[Layout]) -> str:
    """The dataset name to load: ``dataset`` itself unless it is ``auto``.

    ``auto`` with an empty ``root`` is ``default`` (the embedded offline dataset); with a
    root it is the first matching layout's dataset, and one line on stderr (rank 0 only)
    says what was found, e.g. ``data.dataset=auto -> imagefolder (found train/<class>/ in /x)``.
    """
    if dataset != AUTO:
        return dataset
    if not root:
        return default
    layout, found = match_layout(root, layouts)
    announce(layout.dataset, f"found {found} in {root}")
    return layout.dataset


def announce(dataset: str, why: str) -> None:
    """Tell the user (stderr, rank 0 only) which dataset ``auto`` chose and why."""
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"data.dataset=auto -> {dataset} ({why})", file=sys.stderr)


def subfolders(path: Path) -> list[Path]:
    """Visible sub-folders of ``path`` (none if it is not a folder), sorted by name."""
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def first_match(path: Path, patterns: Iterable[str]) -> Path | None:
    """The first file or folder under ``path`` matching one of the glob ``patterns`` (tried in order)."""
    for pattern in patterns:
        hit = next(iter(sorted(path.glob(pattern))), None)
        if hit is not None:
            return hit
    return None


def first_json_record(path: Path) -> dict | None:
    """The first non-empty line of a JSON-lines file as an object, or ``None`` if it is not one.

    Reads a bounded amount (manifests can be gigabytes), so probing a folder stays cheap.
    """
    try:
        with path.open("r", encoding="utf-8") as f:
            for _ in range(100):
                line = f.readline(_MAX_LINE)
                if not line:
                    return None
                if line.strip():
                    row = json.loads(line)
                    return row if isinstance(row, dict) else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return None
