"""Plugins at the command line and in run folders.

* ``rsuite --plugin my_module`` (repeatable) and ``RSUITE_PLUGINS=mod1,mod2`` import modules
  before the command runs (:func:`load_modules`, :func:`load_from_env`); a module that fails
  gets one warning line and is skipped.
* A run records the plugins it depends on, with their versions, in ``run.json``
  (:func:`used_by`): the plugin behind its task, the one behind its backbone, and every module
  asked for by name. ``evaluate``, ``predict`` and ``--resume`` call :func:`require`, which
  loads them again or fails with one line naming the plugin that is missing.

Installed entry-point plugins need none of this at training time: the registries load them
lazily (:mod:`backbones.plugins`).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

import backbones
from backbones import plugins as bplugins
from backbones.plugins import Plugin
from backbones.registry import load_plugin as load_backbone_plugin

from . import registry
from .core.errors import UserError
from .core.task import Task

ENV = "RSUITE_PLUGINS"

#: modules imported by name (--plugin, RSUITE_PLUGINS, or reloaded for a run), by module name
_requested: dict[str, Plugin] = {}
#: modules that failed to import (warned about once, not tried again)
_failed: set[str] = set()


def load_modules(modules: Iterable[str]) -> list[Plugin]:
    """Import each module as a plugin; one that raises gets one warning line and is skipped."""
    done = []
    for module in (m.strip() for m in modules):
        if not module:
            continue
        if module in _failed:
            continue
        if module not in _requested:
            try:
                _requested[module] = bplugins.import_module(module)
            except Exception as err:  # a broken plugin must never stop the built-ins
                _failed.add(module)
                bplugins.warn(repr(module), err)
                continue
        done.append(_requested[module])
    return done


def load_from_env() -> list[Plugin]:
    """The modules named in ``RSUITE_PLUGINS`` (comma-separated), imported as plugins."""
    return load_modules(os.environ.get(ENV, "").split(","))


def _with_version(plugin: Plugin) -> Plugin:
    """A module plugin's distribution and version are looked up once it is imported."""
    return bplugins.module_plugin(plugin.module) if plugin.kind == "module" else plugin


def used_by(task: Task, cfg: Any) -> list[dict[str, Any]]:
    """What ``run.json`` records under ``plugins``: the plugins behind the run's task and backbone,
    and every module imported by name, with distribution and version."""
    found: list[Plugin | None] = [registry.origin(task.name)]
    backbone = getattr(getattr(cfg, "backbone", None), "name", None)
    if isinstance(backbone, str):
        try:
            found.append(backbones.entry(backbone).origin)
        except ValueError:  # not a registered name (the task reported it already)
            pass
    found += list(_requested.values())
    unique: dict[tuple[str, str], Plugin] = {}
    for plugin in found:
        if plugin is not None:
            unique.setdefault((plugin.kind, plugin.module if plugin.kind == "module" else plugin.name), plugin)
    return [_with_version(p).record() for p in unique.values()]


def recorded(run_dir: Path) -> list[Plugin]:
    """The plugins ``run_dir/run.json`` lists (none for runs that predate plugins)."""
    meta = Path(run_dir) / "run.json"
    if not meta.is_file():
        return []
    try:
        records = json.loads(meta.read_text()).get("plugins") or []
    except (json.JSONDecodeError, AttributeError):
        raise UserError(f"{meta} is not a JSON object; restore the run folder's run.json") from None
    return [Plugin.from_record(r) for r in records]


def _missing(run_dir: Path, plugin: Plugin, why: str) -> UserError:
    fix = f"install it (pip install {plugin.distribution})" if plugin.distribution else \
        f"put module {plugin.module} on PYTHONPATH (or install its package)"
    return UserError(f"{run_dir} was trained with plugin {plugin.label()}, which {why}; {fix} and run again")


def _check_version(run_dir: Path, plugin: Plugin, now: Plugin | None) -> None:
    if now is not None and plugin.version and now.version and now.version != plugin.version:
        print(f"warning: {run_dir} was trained with plugin {plugin.name!r} {plugin.version}; "
              f"{now.version} is installed", file=sys.stderr)


def require(run_dir: str | Path) -> list[Plugin]:
    """Load every plugin ``run_dir`` was trained with, or raise a one-line :class:`UserError` naming
    the first one that is missing (or fails to load)."""
    run_dir = Path(run_dir)
    plugins = recorded(run_dir)
    for plugin in plugins:
        if plugin.kind == "entry_point":
            loaders = {bplugins.BACKBONES_GROUP: load_backbone_plugin, bplugins.TASKS_GROUP: registry.load_plugin}
            if plugin.group not in loaders:
                raise UserError(f"{run_dir}/run.json names plugin {plugin.name!r} of unknown group "
                                f"{plugin.group!r}; restore the run folder's run.json")
            if not metadata.entry_points(group=plugin.group, name=plugin.name):
                raise _missing(run_dir, plugin, "is not installed here")
            loaded = loaders[plugin.group](plugin.name)
            if loaded is None:
                raise _missing(run_dir, plugin, "failed to load (see the warning above)")
            _check_version(run_dir, plugin, loaded)
        else:
            if plugin.module not in _requested:
                try:
                    _requested[plugin.module] = bplugins.import_module(plugin.module)
                except ModuleNotFoundError as err:
                    if err.name and plugin.module.startswith(err.name):
                        raise _missing(run_dir, plugin, "cannot be imported here") from None
                    raise _missing(run_dir, plugin, f"fails to import (ModuleNotFoundError: {err})") from None
                except Exception as err:
                    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
                    raise _missing(run_dir, plugin, f"fails to import ({type(err).__name__}: {first})") from None
            _check_version(run_dir, plugin, _requested[plugin.module])
    return plugins


def listing() -> str:
    """Lines naming the loaded plugins and what each provides (for ``rsuite train --help``, ``rsuite backbones``)."""
    provided: dict[Plugin, list[str]] = {}
    for name in backbones.names():
        origin = backbones.entry(name).origin
        if origin is not None:
            provided.setdefault(origin, []).append(name)
    for name in registry.names():
        origin = registry.origin(name)
        if origin is not None:
            provided.setdefault(origin, []).append(f"task {name}")
    lines = []
    for plugin, names in provided.items():
        lines.append(f"  {_with_version(plugin).label()}: {', '.join(names)}")
    return "\n".join(lines)
