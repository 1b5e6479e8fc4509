"""residual-suite task plugins, the shared engine, and the Python API.

>>> import tasks
>>> run = tasks.train("classification", overrides={"trainer.max_steps": 300})   # doctest: +SKIP
>>> tasks.evaluate(run.dir)                                                       # doctest: +SKIP

CPU threading defaults are chosen here, before torch is imported by anything in the suite:
OpenMP threads that spin while waiting for a busy core made training 2-4x slower whenever
another process shared the cores (measured in FIELD-NOTES). A value the user exported wins.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

#: the public API, loaded on first use so that `import tasks` stays light
_API = ("train", "evaluate", "load_run", "Run", "LoadedRun", "recipes", "task_names")
_DEPLOY = ("Predictor", "export")  # after training: tasks.deploy
__all__ = [*_API, *_DEPLOY]


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api

        return getattr(api, name)
    if name in _DEPLOY:
        from . import deploy

        return getattr(deploy, name)
    raise AttributeError(f"module 'tasks' has no attribute {name!r}")
