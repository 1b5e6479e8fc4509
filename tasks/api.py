"""The Python API: train, evaluate and load runs of any task.

The CLI, ``make demo``, the experiments and the benchmarks all call these functions; nobody
passes argv around. Overrides are a mapping (``{"trainer.max_steps": 300}``) or the
command line's ``key=value`` strings.

>>> run = train("classification", overrides={"trainer.max_steps": 300})      # doctest: +SKIP
>>> evaluate(run.dir)["top1"]                                                # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .core import distributed
from .core.checkpoint import load_checkpoint
from .core.config import Overrides, check_common, from_dict, load_config
from .core.device import resolve_device
from .core.errors import Interrupted, UserError
from .core.lifecycle import RunFolder
from .core.task import Task
from .plugins import require, used_by
from .registry import load_task
from .registry import names as _task_names


@dataclass
class Run:
    """A finished (or stopped) training: its folder and the metrics of its last evaluation."""

    dir: Path
    task: str
    metrics: dict[str, Any]


@dataclass
class LoadedRun:
    """A run's task, resolved config, data info, checkpoint and model (eval mode, on ``device``)."""

    dir: Path
    task: Task
    cfg: Any
    info: dict[str, Any]
    checkpoint: dict[str, Any]
    model: nn.Module
    device: torch.device


def task_names() -> list[str]:
    """Every task's name: the built-ins, then those of installed or loaded plugins."""
    return _task_names()


def recipes(task: str) -> list[str]:
    """The recipe names shipped for ``task`` (give one as ``train(task, recipe=name)``)."""
    return load_task(task).recipes()


def _resolve(task: Task, overrides: Overrides, recipe: str | Path | None,
             resume: str | Path | None) -> tuple[Any, Path, bool]:
    """The config, the run folder, and whether the run continues from a checkpoint."""
    if resume is not None:
        if recipe is not None:
            raise UserError("a resumed run keeps the config saved in its folder; drop the recipe (--config)")
        run_dir = Path(resume)
        if not (run_dir / "config.yaml").is_file():
            raise UserError(f"{run_dir} is not a run folder (no config.yaml); pass the folder `rsuite train` printed")
        cfg = load_config(task.config_class, run_dir / "config.yaml", overrides)
        cfg.trainer.resume = True
        return cfg, run_dir, True
    path = task.recipe_path(recipe)
    cfg = load_config(task.config_class, path, overrides)
    t = cfg.trainer
    run_dir = Path(t.runs_dir) / task.name / (t.run_name or f"{path.stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    return cfg, run_dir, bool(t.resume and (run_dir / "config.yaml").is_file())


def train(task: str | Task, overrides: Overrides | None = None, recipe: str | Path | None = None,
          resume: str | Path | None = None, stop_at: int | None = None) -> Run:
    """Train ``task`` from ``recipe`` (a shipped name or a YAML path; ``None`` = the task's default).

    ``resume`` continues the run folder of a killed run from its last checkpoint. ``stop_at``
    ends the run after that many steps, as a kill would (for tests of resuming). ``run.json`` records
    the plugins the run depends on, which ``resume``, :func:`load_run` and :func:`evaluate` load again.
    """
    if resume is not None:
        require(resume)  # the plugins that provided its task and backbone, or a one-line error naming one
    task = load_task(task) if isinstance(task, str) else task
    cfg, run_dir, resuming = _resolve(task, overrides or {}, recipe, resume)
    check_common(cfg)
    task.check(cfg)
    run = RunFolder.claim(run_dir, task.name, resume=resuming, is_main=int(os.environ.get("RANK", "0")) == 0)
    try:
        trainer = task.make_trainer(cfg, run)
        weights = {"weights": trainer.pretrained} if trainer.pretrained else {}  # where the backbone started
        runtime = getattr(trainer, "runtime", None)  # device, precision, world size, compile (the start line)
        extra = {**weights, **({"runtime": runtime} if runtime else {})}
        run.write_files(cfg, trainer.info, {**task.describe(), **extra, "plugins": used_by(task, cfg)})
        if resuming:
            if trainer.resume():
                print(f"resumed {run_dir} at step {trainer.step}", file=sys.stderr)
            else:  # killed before its first checkpoint: start over, without the dead attempt's log rows
                run.open_logger().resume_at(0)
                print(f"{run_dir} has no checkpoint yet (killed before its first one): training starts at step 0",
                      file=sys.stderr)
        metrics = trainer.fit(stop_at=stop_at)
    except OSError as err:
        run.release(failed=True)
        if err.errno is None:  # not the file system's (an undecodable image, say): the CLI names it
            raise
        # disk full, folder made read-only mid-run: the last checkpoint stays intact
        then = (f"the last checkpoint is intact: fix that, then resume with: rsuite train {task.name} --resume "
                f"{run_dir}") if run.last.is_file() else "no checkpoint was written: fix that and train again"
        raise UserError(f"file system error at {err.filename or run_dir} ({err.strerror}); {then}") from None
    except BaseException:
        run.release(failed=True)
        raise
    finally:
        distributed.teardown()
    run.release()
    if getattr(trainer, "interrupted", False):
        raise Interrupted(f"interrupted at step {trainer.step}; checkpoint saved; resume with: "
                          f"rsuite train {task.name} --resume {run_dir}")
    return Run(run_dir, task.name, metrics)


def load_run(run_dir: str | Path, which: str = "best", device: str = "cpu") -> LoadedRun:
    """The model of ``run_dir`` (its ``best.pt``, else ``last.pt``) with its task and config."""
    run_dir = Path(run_dir)
    folder = run_dir / "checkpoints"
    path = next((p for p in (folder / f"{which}.pt", folder / "last.pt") if p.is_file()), None)
    if path is None:
        raise UserError(f"{run_dir} has no checkpoints/{which}.pt or last.pt; pass a folder printed by `rsuite train`")
    ckpt = load_checkpoint(path)
    meta = run_dir / "run.json"
    owner = json.loads(meta.read_text()).get("task") if meta.is_file() else None
    if owner is not None and owner != ckpt["task"]:
        raise UserError(f"{path} was written by task {ckpt['task']!r} but {run_dir} is a {owner} run; "
                        "put checkpoints back in their own run folder")
    require(run_dir)  # before the task and backbone names are looked up: a missing plugin is named
    task = load_task(str(ckpt["task"]))
    cfg = from_dict(task.config_class, ckpt["config"])
    dev = resolve_device(device)
    model = task.build_model(cfg, ckpt["data_info"])
    model.load_state_dict(ckpt["model"])
    return LoadedRun(run_dir, task, cfg, ckpt["data_info"], ckpt, model.to(dev).eval(), dev)


def evaluate(run_dir: str | Path, device: str = "auto") -> dict[str, Any]:
    """Metrics of the run's best checkpoint under the task's fixed names; also written to ``eval.json``."""
    loaded = load_run(run_dir, device=device)
    writable = os.access(loaded.dir, os.W_OK)
    if not writable:
        print(f"warning: {loaded.dir} is read-only; printing the metrics without eval.json and pictures",
              file=sys.stderr)
    metrics = loaded.task.final_metrics(loaded.cfg, loaded.model, loaded.info, loaded.dir if writable else None,
                                        loaded.device)
    result = {"task": loaded.task.name, "backbone": loaded.cfg.backbone.name, "step": loaded.checkpoint["step"],
              **metrics, "params": sum(p.numel() for p in loaded.model.parameters())}
    if writable:
        try:
            (loaded.dir / "eval.json").write_text(json.dumps(result, indent=2))
        except OSError as err:
            print(f"warning: could not write {loaded.dir / 'eval.json'} ({err.strerror})", file=sys.stderr)
    return result


def train_overrides(task: str, budget: str) -> tuple[str | None, dict[str, Any]]:
    """The recipe and overrides of one of ``task``'s named budgets (``demo``, ``small``)."""
    t = load_task(task)
    if budget not in t.budgets:
        raise UserError(f"task {task} has no budget {budget!r}; choose from {', '.join(t.budgets) or 'none'}")
    b = t.budgets[budget]
    return b.recipe, dict(b.overrides)

