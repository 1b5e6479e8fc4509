"""Name -> builder registry: ``create``, ``names``, ``register``.

Every entry records its modality and the keyword options it accepts, so a typo in a name
or an option, or an option value of the wrong type, fails at once with a one-line
``ValueError`` before anything is built. Errors raised while building (a ``TypeError`` from
a bug inside a builder, say) propagate unchanged: they are not the caller's mistake.

Installed plugins (entry-point group ``residual_suite.backbones``, see :mod:`backbones.plugins`)
are loaded lazily: when a name is not among those registered, and when every name is listed.
Each entry remembers its ``origin``, the plugin that registered it, so a run can record it.
"""

from __future__ import annotations

import difflib
import inspect
import numbers
import sys
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from . import plugins
from .base import MODALITY_RANK
from .plugins import Plugin


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable[..., nn.Module]
    modality: str
    fixed: dict[str, Any] = field(default_factory=dict)
    #: the plugin that registered this name (``None`` for the built-ins)
    origin: Plugin | None = None

    def options(self) -> list[str]:
        """Keyword options a user may override (the builder's, minus the fixed ones)."""
        params = inspect.signature(self.builder).parameters.values()
        return sorted(p.name for p in params
                      if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in self.fixed)

    def accepts_any(self) -> bool:
        """Whether the builder takes ``**kwargs`` (then option names cannot be checked up front)."""
        return any(p.kind is p.VAR_KEYWORD for p in inspect.signature(self.builder).parameters.values())

    def signature(self) -> inspect.Signature:
        """The builder's signature with its annotations resolved (left as strings if they cannot be)."""
        try:
            return inspect.signature(self.builder, eval_str=True)
        except Exception:  # an annotation naming something not importable at runtime: skip type checks
            return inspect.signature(self.builder)


_REGISTRY: dict[str, Entry] = {}


def register(name: str, modality: str = "image", **fixed: Any) -> Callable:
    """Register a builder under ``name``; usable as ``@register("my_net")`` on a function.

    ``fixed`` are arguments bound for this name (``register("resnet18", block="basic",
    layers=(2, 2, 2, 2))(ImageNetResNet)``); users cannot override them.
    """
    if modality not in MODALITY_RANK:
        raise ValueError(f"modality={modality!r} is not valid; choose one of: {', '.join(MODALITY_RANK)}")

    origin = plugins.current() or _caller_origin(sys._getframe(1).f_globals.get("__name__", ""))

    def decorator(builder: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is already registered; pick another name")
        _REGISTRY[name] = Entry(name, builder, modality, dict(fixed), origin)
        return builder

    return decorator


def _caller_origin(module: str) -> Plugin | None:
    """A name registered outside any plugin load (``import my_nets`` in a script) came from the calling
    module; the built-ins and a script's ``__main__`` (which nothing can import again) have none."""
    if not module or module == "__main__" or module == "backbones" or module.startswith("backbones."):
        return None
    return Plugin(module, "module", module)


def _apply_plugin(provided: Any) -> None:
    """What a ``residual_suite.backbones`` entry point names: a module (importing it registered its
    backbones) or a callable that registers them."""
    if isinstance(provided, types.ModuleType):
        return
    if not callable(provided):
        raise TypeError(f"the entry point names a {type(provided).__name__}; name a module or a callable")
    provided()


def discover() -> None:
    """Load the installed backbone plugins not loaded yet (cheap when nothing changed)."""
    plugins.discover(plugins.BACKBONES_GROUP, _apply_plugin)


def load_plugin(name: str) -> Plugin | None:
    """Load the installed ``residual_suite.backbones`` entry point ``name``; ``None`` if absent or broken."""
    return plugins.load_entry_point(plugins.BACKBONES_GROUP, name, _apply_plugin)


def _close(word: str, candidates: list[str]) -> str:
    matches = difflib.get_close_matches(word, candidates, n=5, cutoff=0.5)
    return ", ".join(matches) if matches else ", ".join(candidates[:12]) + (" ..." if len(candidates) > 12 else "")


def entry(name: str) -> Entry:
    """The registry entry for ``name``; unknown names list their close matches.

    A name that is not registered loads the installed plugins first (they may provide it).
    """
    if name not in _REGISTRY:
        discover()
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone {name!r}; close matches: {_close(name, names())}")
    return _REGISTRY[name]


def names(modality: str | None = None) -> list[str]:
    """Every registered name (sorted), or those of one modality: image, sequence, vector.

    Installed plugins are loaded first, so their names are listed too.
    """
    if modality is not None and modality not in MODALITY_RANK:
        raise ValueError(f"modality={modality!r} is not valid; choose one of: {', '.join(MODALITY_RANK)}")
    discover()
    return sorted(n for n, e in _REGISTRY.items() if modality is None or e.modality == modality)


def _hint_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("collections.abc.", "")


def _short(value: Any) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


def _fits(value: Any, hint: Any) -> bool:
    """Whether ``value`` matches the annotation ``hint``, as a YAML/CLI value reasonably can.

    Ints pass for floats; any list or tuple (or OmegaConf list) passes for ``Sequence``,
    ``tuple`` and ``list`` hints, element types checked. Hints this does not understand
    pass: the builder judges those values itself.
    """
    if hint is inspect.Parameter.empty or hint is Any or isinstance(hint, str):
        return True
    if hint is None or hint is type(None):
        return value is None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union or origin is types.UnionType:
        return any(_fits(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:  # bool is an int subclass, but True is no channel count
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    container = origin or hint
    if container in (tuple, list, Sequence):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(_fits(v, a) for v, a in zip(value, args))
        return not args or all(_fits(v, args[0]) for v in value)
    if container in (dict, Mapping):
        return isinstance(value, Mapping)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def check_options(name: str, **overrides: Any) -> None:
    """Raise a one-line ``ValueError`` if ``overrides`` name an option ``name`` lacks or give a wrong type.

    Names are checked against the builder's keyword parameters, values against their type
    annotations, and the whole call is bound to the signature, all without building.
    """
    e = entry(name)
    sig = e.signature()
    if not e.accepts_any():
        valid = e.options()
        for key in overrides:
            if key not in valid:
                raise ValueError(f"{name} does not take option {key!r}; valid options: {', '.join(valid)}")
    for key, value in overrides.items():
        param = sig.parameters.get(key)
        if param is not None and not _fits(value, param.annotation):
            raise ValueError(f"{name}: option {key}={_short(value)} is a {type(value).__name__}; "
                             f"expected {_hint_name(param.annotation)}")
    try:
        sig.bind(**e.fixed, **overrides)
    except TypeError as err:  # e.g. a required option left out
        raise ValueError(f"{name}: {err}") from None


def create(name: str, **overrides: Any) -> nn.Module:
    """Build the backbone ``name``; ``overrides`` reach its family and its blocks.

    Option names and value types are checked first (:func:`check_options`); what the
    builder raises after that (a ``ValueError`` for a value out of range, or an internal
    error) reaches the caller unchanged.

    >>> m = create("resnet56", shortcut="none")   # the plain twin: same depth and widths
    """
    check_options(name, **overrides)
    e = entry(name)
    return e.builder(**e.fixed, **overrides)
