"""Plugins: code outside this repository that registers backbones (or tasks) by name.

Two ways in, both recorded as a :class:`Plugin` so a run folder can name what it needs:

* **entry points**, the packaging standard pytest and many libraries use: a package declares
  ``[project.entry-points."residual_suite.backbones"] my_nets = "my_pkg.nets"`` and, once
  installed, is found by :func:`discover` (lazily: when a name is not among the built-ins, or
  when every name is listed);
* **modules imported by name** (``rsuite --plugin my_module``, ``RSUITE_PLUGINS``), no packaging.

While a plugin loads, :func:`scope` marks it as the origin of whatever it registers. A plugin
that fails to load prints one warning line naming it and is skipped: the built-ins keep working.
This module imports nothing of the project, so both ``backbones`` and ``tasks`` build on it.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any

BACKBONES_GROUP = "residual_suite.backbones"
TASKS_GROUP = "residual_suite.tasks"


@dataclass(frozen=True)
class Plugin:
    """Where registered names came from: an entry point of an installed package, or a module.

    ``module`` is what to import to load it again; ``distribution`` and ``version`` say what to
    install when it is missing (``None`` for a module no installed distribution provides).
    """

    name: str
    kind: str  # "entry_point" | "module"
    module: str
    group: str | None = None
    distribution: str | None = None
    version: str | None = None

    def record(self) -> dict[str, Any]:
        """The JSON form written into ``run.json``."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Plugin:
        return cls(**{k: record.get(k) for k in ("name", "kind", "module", "group", "distribution", "version")})

    def label(self) -> str:
        """``'name' (distribution 1.0)`` for messages."""
        source = " ".join(x for x in (self.distribution, self.version) if x)
        return f"{self.name!r}" + (f" ({source})" if source else "")


_current: Plugin | None = None
#: (group, entry-point name, value) -> the plugin it loaded, or None when it failed (tried once)
_tried: dict[tuple[str, str, str], Plugin | None] = {}
#: group -> sys.path at the last scan: a changed path (a test's metadata folder, say) is scanned again
_scanned: dict[str, tuple[str, ...]] = {}


@contextmanager
def scope(plugin: Plugin) -> Iterator[Plugin]:
    """Mark ``plugin`` as the origin of everything registered inside the block."""
    global _current
    outer, _current = _current, plugin
    try:
        yield plugin
    finally:
        _current = outer


def current() -> Plugin | None:
    """The plugin being loaded right now, if any."""
    return _current


def warn(plugin: str, err: BaseException) -> None:
    """The one line a broken plugin gets (on stderr): its name and the first line of what it raised."""
    message = str(err).strip().splitlines()[0] if str(err).strip() else ""
    detail = f"{type(err).__name__}: {message}" if message else type(err).__name__
    print(f"warning: plugin {plugin} failed to load and is skipped ({detail})", file=sys.stderr)


def distribution_of(module: str) -> tuple[str | None, str | None]:
    """The installed distribution that provides top-level package ``module``, and its version."""
    top = module.partition(".")[0]
    names = metadata.packages_distributions().get(top) or []
    for name in names:
        try:
            return name, metadata.version(name)
        except metadata.PackageNotFoundError:  # pragma: no cover - listed but gone
            continue
    version = getattr(sys.modules.get(top), "__version__", None)
    return None, str(version) if version is not None else None


def module_plugin(module: str) -> Plugin:
    """A :class:`Plugin` record for a module imported by name (``--plugin``, or a plain ``import``)."""
    distribution, version = distribution_of(module)
    return Plugin(module, "module", module, None, distribution, version)


def _entry_plugin(ep: metadata.EntryPoint) -> Plugin:
    dist = getattr(ep, "dist", None)
    return Plugin(ep.name, "entry_point", ep.module, ep.group,
                  dist.metadata["Name"] if dist is not None else None, dist.version if dist is not None else None)


def _load(ep: metadata.EntryPoint, apply: Callable[[Any], None]) -> Plugin | None:
    key = (ep.group, ep.name, ep.value)
    if key in _tried:
        return _tried[key]
    plugin = _entry_plugin(ep)
    _tried[key] = None  # set first: a plugin that lists names while it loads does not load itself again
    try:
        with scope(plugin):
            apply(ep.load())
    except Exception as err:  # a broken plugin must never stop the built-ins
        warn(plugin.label(), err)
        return None
    _tried[key] = plugin
    return plugin


def discover(group: str, apply: Callable[[Any], None]) -> None:
    """Load every entry point of ``group`` not tried yet; ``apply`` registers what one provides.

    The scan runs again only when ``sys.path`` changed since the last one (``importlib.metadata``
    reads the installed distributions from it), so listing names stays cheap.
    """
    path = tuple(sys.path)
    if _scanned.get(group) == path:
        return
    _scanned[group] = path
    for ep in metadata.entry_points(group=group):
        _load(ep, apply)


def load_entry_point(group: str, name: str, apply: Callable[[Any], None]) -> Plugin | None:
    """Load the installed entry point ``name`` of ``group``; ``None`` when none is installed or it failed."""
    for ep in metadata.entry_points(group=group, name=name):
        return _load(ep, apply)
    return None


def loaded(group: str | None = None) -> list[Plugin]:
    """The entry-point plugins loaded so far (of one group, or all)."""
    return [p for (g, _, _), p in _tried.items() if p is not None and (group is None or g == group)]


def import_module(module: str) -> Plugin:
    """Import ``module`` as a plugin (its registrations name it as their origin); raises what the import raises."""
    plugin = Plugin(module, "module", module)
    with scope(plugin):
        importlib.import_module(module)
    return module_plugin(module)
