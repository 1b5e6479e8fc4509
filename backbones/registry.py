"""Name -> builder registry: ``create``, ``names``, ``register``.

Every entry records its modality and the keyword options it accepts, so a typo in a name
or an option fails at once with a one-line ``ValueError`` that lists the close matches.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .base import MODALITY_RANK


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable[..., nn.Module]
    modality: str
    fixed: dict[str, Any] = field(default_factory=dict)

    def options(self) -> list[str]:
        """Keyword options a user may override (the builder's, minus the fixed ones)."""
        params = inspect.signature(self.builder).parameters.values()
        return sorted(p.name for p in params
                      if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in self.fixed)

    def accepts_any(self) -> bool:
        return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(self.builder).parameters.values())


_REGISTRY: dict[str, Entry] = {}


def register(name: str, modality: str = "image", **fixed: Any) -> Callable:
    """Register a builder under ``name``; usable as ``@register("my_net")`` on a function.

    ``fixed`` are arguments bound for this name (``register("resnet18", block="basic",
    layers=(2, 2, 2, 2))(ImageNetResNet)``); users cannot override them.
    """
    if modality not in MODALITY_RANK:
        raise ValueError(f"modality={modality!r} is not valid; choose one of: {', '.join(MODALITY_RANK)}")

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is already registered; pick another name")
        _REGISTRY[name] = Entry(name, builder, modality, dict(fixed))
        return builder

    return decorator


def _close(word: str, candidates: list[str]) -> str:
    matches = difflib.get_close_matches(word, candidates, n=5, cutoff=0.5)
    return ", ".join(matches) if matches else ", ".join(candidates[:12]) + (" ..." if len(candidates) > 12 else "")


def entry(name: str) -> Entry:
    """The registry entry for ``name``; unknown names list their close matches."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; close matches: {_close(name, names())}")
    return _REGISTRY[name]


def names(modality: str | None = None) -> list[str]:
    """Every registered name (sorted), or those of one modality: image, sequence, vector."""
    if modality is not None and modality not in MODALITY_RANK:
        raise ValueError(f"modality={modality!r} is not valid; choose one of: {', '.join(MODALITY_RANK)}")
    return sorted(n for n, e in _REGISTRY.items() if modality is None or e.modality == modality)


def create(name: str, **overrides: Any) -> nn.Module:
    """Build the backbone ``name``; ``overrides`` reach its family and its blocks.

    >>> m = create("resnet56", shortcut="none")   # the plain twin: same depth and widths
    """
    e = entry(name)
    if not e.accepts_any():
        valid = e.options()
        for key in overrides:
            if key not in valid:
                raise ValueError(f"{name} does not take option {key!r}; valid options: "
                                 f"{', '.join(valid)}")
    try:
        return e.builder(**e.fixed, **overrides)
    except TypeError as err:  # a wrong value type reaching a constructor
        raise ValueError(f"{name}: bad option value ({err}); check the option types") from None
