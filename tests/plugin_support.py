"""Test helpers for plugins: installed-looking distributions without ``pip install``, and clean registries.

``importlib.metadata`` finds a distribution through any ``<name>-<version>.dist-info`` folder on
``sys.path``; one with ``METADATA`` and ``entry_points.txt`` is all an installed plugin shows
the suite. So the tests put such a folder in ``tmp_path`` instead of installing anything
(``pip install -e examples/plugin`` is not needed, and an installed copy would be shadowed).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from backbones import blocks
from backbones import plugins as backbone_plugins
from backbones import registry as backbone_registry
from tasks import plugins as task_plugins
from tasks import registry as task_registry

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "plugin"


def add_distribution(root: Path, name: str, version: str, entry_points: dict[str, dict[str, str]],
                     monkeypatch: pytest.MonkeyPatch) -> Path:
    """Write ``<name>-<version>.dist-info`` (METADATA, entry_points.txt) under ``root``, put ``root`` first
    on sys.path."""
    info = root / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{key} = {value}\n" for key, value in points.items()) + "\n"
        for group, points in entry_points.items()))
    monkeypatch.syspath_prepend(str(root))
    return info


def add_example_plugin(root: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The repository's example plugin as pip would install it: its entry points, read from its own
    pyproject.toml, in a dist-info folder, and its module on sys.path. Returns the distribution name."""
    toml = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    project = toml.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    add_distribution(root, project["name"], project["version"], project["entry-points"], monkeypatch)
    monkeypatch.syspath_prepend(str(EXAMPLE))
    return project["name"]


#: modules the plugin tests import (the example's, and the throw-away ones they write)
MODULES = ("rsuite_rezero", "tp_nets", "tp_broken", "tp_task", "tp_adhoc")


@contextmanager
def isolated_plugins(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Whatever a test's plugins register (backbones, blocks, tasks, loaded-plugin records, imported
    modules) is gone when it ends, so ``backbones.names()`` stays the real set for the other tests."""
    # the built-ins only: a plugin installed in the environment (pip install -e examples/plugin) would
    # otherwise hold its names already, and the copy a test loads would clash with them
    monkeypatch.setattr(backbone_registry, "_REGISTRY",
                        {n: e for n, e in backbone_registry._REGISTRY.items() if e.origin is None})
    monkeypatch.setattr(blocks, "BLOCKS", dict(blocks.BLOCKS))
    monkeypatch.setattr(backbone_plugins, "_tried", {})
    monkeypatch.setattr(backbone_plugins, "_scanned", {})
    monkeypatch.setattr(task_registry, "_PLUGIN_TASKS", {})
    monkeypatch.setattr(task_plugins, "_requested", {})
    monkeypatch.setattr(task_plugins, "_failed", set())
    for name in MODULES:
        monkeypatch.delitem(sys.modules, name, raising=False)
    try:
        yield
    finally:
        for name in MODULES:
            sys.modules.pop(name, None)
