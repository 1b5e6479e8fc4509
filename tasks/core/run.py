"""Entry points shared by every task: parse, make the run folder, train / evaluate / load.

``python -m tasks.<task>.train`` and ``rsuite train <task>`` both end in :func:`train_main`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from . import distributed
from .checkpoint import load_checkpoint
from .config import from_dict, load_config, save_yaml
from .engine import Trainer
from .errors import UserError
from .task import SupervisedTask


def parse_train_args(argv: list[str], task_name: str) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"rsuite train {task_name}",
                                description=f"Train the {task_name} task; key=value pairs override the recipe.")
    p.add_argument("--config", help="recipe YAML (default: the task's embedded offline recipe)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed run from its last checkpoint")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. trainer.max_steps=100 backbone.name=plain20")
    return p.parse_args(argv)


def run_dir_for(cfg: Any, task: str, recipe: str) -> Path:
    t = cfg.trainer
    name = t.run_name or f"{recipe}-{time.strftime('%Y%m%d-%H%M%S')}"
    return Path(t.runs_dir) / task / name


def prepare(task: SupervisedTask, argv: list[str]) -> tuple[Any, Path]:
    """Resolve the config (recipe or a run folder being resumed) and the run folder."""
    args = parse_train_args(argv, task.name)
    if args.resume:
        run_dir = Path(args.resume)
        if not (run_dir / "config.yaml").is_file():
            raise UserError(f"{run_dir} is not a run folder (no config.yaml); pass the folder `rsuite train` printed")
        cfg = load_config(task.config_class, run_dir / "config.yaml", [*args.overrides, "trainer.resume=true"])
        return cfg, run_dir
    path = Path(args.config) if args.config else task.default_config_path()
    cfg = load_config(task.config_class, path, args.overrides)
    run_dir = run_dir_for(cfg, task.name, path.stem)
    if run_dir.exists() and any(run_dir.iterdir()) and not cfg.trainer.resume:
        raise UserError(f"run folder {run_dir} already holds a run; set trainer.resume=true to continue it "
                        "or pick another trainer.run_name")
    return cfg, run_dir


def write_run_files(run_dir: Path, cfg: Any, info: dict[str, Any]) -> None:
    """``config.yaml`` (the resolved settings) and ``data_info.json`` (what the model was built for:
    classes, label <-> dataset id maps, ...; also inside every checkpoint) of a run folder."""
    save_yaml(cfg, run_dir / "config.yaml")
    (run_dir / "data_info.json").write_text(json.dumps(info, indent=1, default=str) + "\n")


def train_main(task: SupervisedTask, argv: list[str] | None = None, stop_at: int | None = None) -> Path:
    """Train ``task``; prints the run folder as the last line of stdout and returns it."""
    cfg, run_dir = prepare(task, sys.argv[1:] if argv is None else argv)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        trainer = Trainer(task, cfg, run_dir)
    except BaseException:
        if created:  # bad data or model settings: leave no empty run folder behind
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    if trainer.dist.is_main:
        write_run_files(run_dir, cfg, trainer.data.info)
    if cfg.trainer.resume and trainer.resume():
        print(f"resumed {run_dir} at step {trainer.step}", file=sys.stderr)
    try:
        trainer.fit(stop_at=stop_at)
    finally:
        distributed.teardown()
    if trainer.dist.is_main:
        print(run_dir)
    return run_dir


def load_run(task: SupervisedTask, run_dir: Path, which: str = "best") -> tuple[Any, dict[str, Any], torch.nn.Module]:
    """Config, checkpoint and model (weights loaded, eval mode, CPU) of a finished run."""
    run_dir = Path(run_dir)
    path = run_dir / "checkpoints" / f"{which}.pt"
    if not path.is_file():
        path = run_dir / "checkpoints" / "last.pt"
    ckpt = load_checkpoint(path, task.name)
    cfg = from_dict(task.config_class, ckpt["config"])
    model = task.build_model(cfg, ckpt["data_info"])
    model.load_state_dict(ckpt["model"])
    return cfg, ckpt, model.eval()


def evaluate_run(task: SupervisedTask, run_dir: Path, device: str = "auto") -> dict[str, Any]:
    """Evaluate ``best.pt`` on the run's validation data; writes ``eval.json`` there."""
    from .device import resolve_device
    from .loader import make_loader

    cfg, ckpt, model = load_run(task, run_dir)
    dev = resolve_device(device)
    data = task.build_data(cfg, split="val")
    loader = make_loader(data.val, cfg.data.batch_size, collate_fn=data.collate_fn, seed=cfg.seed)
    started = time.perf_counter()
    with torch.no_grad():
        metrics = task.evaluate(model.to(dev), loader, dev, ckpt["data_info"], Path(run_dir))
    result = {"task": task.name, "backbone": cfg.backbone.name, "step": ckpt["step"], **metrics,
              "params": sum(p.numel() for p in model.parameters()),
              "eval_seconds": round(time.perf_counter() - started, 3)}
    (Path(run_dir) / "eval.json").write_text(json.dumps(result, indent=2))
    return result
