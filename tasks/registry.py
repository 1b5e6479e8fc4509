"""Tasks by name, imported lazily (a task's heavy dependencies load only when used).

The built-in tasks are listed in :data:`TASKS`. A task of your own comes from a plugin: the
entry-point group ``residual_suite.tasks`` of an installed package (loaded when a name is not
built in, or when every name is listed), or :func:`register_task` called by a module given to
``rsuite --plugin``. A plugin task is a :class:`~tasks.core.task.Task` like the built-ins; its
package may hold a ``predict`` module with ``predict(run_dir, inputs, out)``.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from tasks.core.errors import UserError
from tasks.core.task import Task

if TYPE_CHECKING:
    from backbones.plugins import Plugin

#: task name -> package; each package has ``task.TASK`` and ``predict.predict``
TASKS = {
    "classification": "tasks.classification",
    "detection": "tasks.detection",
    "segmentation": "tasks.segmentation",
    "super_resolution": "tasks.super_resolution",
    "speech": "tasks.speech",
    "dqn": "tasks.dqn",
    "dynamics": "tasks.dynamics",
}


@dataclass(frozen=True)
class PluginTask:
    """A task registered by a plugin: the task, the package of its modules, and the plugin it came from."""

    task: Task
    package: str
    origin: Plugin | None


_PLUGIN_TASKS: dict[str, PluginTask] = {}


def register_task(task: Task | type[Task], package: str | None = None) -> Task:
    """Make ``task`` (an instance or a ``Task`` subclass) known by its ``name``.

    ``package`` holds the task's other modules (``predict``); by default, the package of its class.
    """
    from backbones import plugins

    if isinstance(task, type) and issubclass(task, Task):
        task = task()
    if not isinstance(task, Task):
        raise TypeError(f"register_task needs a tasks.core.task.Task, not a {type(task).__name__}")
    name = getattr(task, "name", None)
    if not isinstance(name, str) or not name:
        raise ValueError(f"{type(task).__name__} has no name; set the class attribute name = 'my_task'")
    if name in TASKS or name in _PLUGIN_TASKS:
        raise ValueError(f"task {name!r} is already registered; pick another name")
    module = type(task).__module__
    origin = plugins.current()
    if origin is None and module != "__main__" and not module.startswith("tasks."):
        origin = plugins.Plugin(module, "module", module)
    _PLUGIN_TASKS[name] = PluginTask(task, package or module.rpartition(".")[0] or module, origin)
    return task


def _apply_plugin(provided: Any) -> None:
    """What a ``residual_suite.tasks`` entry point names: a Task (or its class), or a module holding one
    as ``TASK`` (or as ``task.TASK``, the built-ins' layout)."""
    if isinstance(provided, ModuleType):
        found = getattr(provided, "TASK", None)
        if found is None:
            try:
                found = importlib.import_module(f"{provided.__name__}.task").TASK
            except (ModuleNotFoundError, AttributeError):
                raise TypeError(f"module {provided.__name__} has no TASK (nor {provided.__name__}.task.TASK); "
                                "point the entry point at your Task") from None
        register_task(found, provided.__name__ if hasattr(provided, "__path__") else None)
    else:
        register_task(provided)


def discover() -> None:
    """Load the installed task plugins not loaded yet."""
    from backbones import plugins

    plugins.discover(plugins.TASKS_GROUP, _apply_plugin)


def load_plugin(name: str) -> Plugin | None:
    """Load the installed ``residual_suite.tasks`` entry point ``name``; ``None`` if absent or broken."""
    from backbones import plugins

    return plugins.load_entry_point(plugins.TASKS_GROUP, name, _apply_plugin)


def names() -> list[str]:
    """Every task's name: the built-ins, then the plugins' (installed ones are loaded first)."""
    discover()
    return [*TASKS, *sorted(_PLUGIN_TASKS)]


def _plugin(name: str) -> PluginTask | None:
    if name not in _PLUGIN_TASKS:
        discover()
    return _PLUGIN_TASKS.get(name)


def origin(name: str) -> Plugin | None:
    """The plugin that provides task ``name`` (``None`` for a built-in)."""
    found = None if name in TASKS else _plugin(name)
    return found.origin if found else None


def task_package(name: str) -> str:
    if name in TASKS:
        return TASKS[name]
    found = _plugin(name)
    if found is None:
        known = names()
        close = difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UserError(f"unknown task {name!r}; {hint}choose one of: {', '.join(known)}")
    return found.package


def load_task(name: str) -> Task:
    if name in TASKS:
        return importlib.import_module(TASKS[name] + ".task").TASK
    task_package(name)  # the one-line error for an unknown name
    return _PLUGIN_TASKS[name].task


def load_module(name: str, module: str) -> ModuleType:
    target = f"{task_package(name)}.{module}"
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as err:
        if name in TASKS or err.name != target:
            raise
        raise UserError(f"task {name!r} has no {module} module ({target}); its plugin does not offer "
                        f"`rsuite {module}`") from None
