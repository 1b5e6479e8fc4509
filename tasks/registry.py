"""Task plugins by name, imported lazily (a task's heavy dependencies load only when used)."""

from __future__ import annotations

import difflib
import importlib
from types import ModuleType

from tasks.core.errors import UserError

#: task name -> package; each package has ``task.TASK`` and ``predict.predict``
TASKS = {
    "classification": "tasks.classification",
    "detection": "tasks.detection",
    "super_resolution": "tasks.super_resolution",
    "speech": "tasks.speech",
    "dqn": "tasks.dqn",
}


def task_package(name: str) -> str:
    if name not in TASKS:
        close = difflib.get_close_matches(name, list(TASKS), n=3)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UserError(f"unknown task {name!r}; {hint}choose one of: {', '.join(TASKS)}")
    return TASKS[name]


def load_task(name: str) -> object:
    return importlib.import_module(task_package(name) + ".task").TASK


def load_module(name: str, module: str) -> ModuleType:
    return importlib.import_module(f"{task_package(name)}.{module}")
