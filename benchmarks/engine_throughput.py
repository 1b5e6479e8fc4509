"""The engine's training step against a bare loop written the way torchvision's references write it.

What: samples/s of ``Trainer.fit`` (the real step: loader with per-sample seeding and the bad-file
guard, device transfer, autocast, optimizer, schedule, tensor logs read every ``log_every`` steps,
TensorBoard/JSON logging) against a bare loop over the same dataset, model, optimizer and batch
(``references/classification/train.py``'s ``train_one_epoch`` without its MetricLogger, so
without its per-step ``loss.item()``; BasicSR's ``sr = net(lr); l1(sr, hr)``; the detection
reference's ``sum(model(images, targets).values())``). Engine and bare rounds alternate in one
process, so drift in clock or load hits both; medians are reported and ``engine/bare >= 0.95``
means the engine costs at most 5 %.

Per task it also prints the loader alone (batches/s of the engine's training loader, no model)
against the step alone (the engine's step on one batch already loaded): a loader slower than the
step starves the device.

    python benchmarks/engine_throughput.py                       # CPU: classification, super_resolution
    python benchmarks/engine_throughput.py --device cuda --tasks classification super_resolution detection
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

import tasks  # noqa: F401  (thread defaults before torch spins up)
from tasks.core.config import load_config
from tasks.core.device import autocast
from tasks.core.lifecycle import RunFolder
from tasks.core.optim import build_optimizer, build_scheduler
from tasks.registry import load_task

GOAL = 0.95  # engine/bare on CPU (issue 13)


@dataclass
class Setup:
    """How one task is benchmarked: recipe and overrides per device, and its bare step (None: no bare loop)."""

    recipe: dict[str, str | None]
    overrides: dict[str, dict[str, Any]]
    bare: Callable[[nn.Module, Any, torch.device], torch.Tensor] | None
    goal: float | None = None


def bare_classification(model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
    image, target = batch
    image, target = image.to(device, non_blocking=True), target.to(device, non_blocking=True)
    if device.type == "cuda":  # the engine feeds its channels-last model channels-last inputs
        image = image.contiguous(memory_format=torch.channels_last)
    return F.cross_entropy(model(image), target)


def bare_super_resolution(model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
    lr, hr = batch
    lr, hr = lr.to(device, non_blocking=True), hr.to(device, non_blocking=True)
    if device.type == "cuda":
        lr = lr.contiguous(memory_format=torch.channels_last)
    return F.l1_loss(model(lr), hr)


def bare_detection(model: nn.Module, batch: Any, device: torch.device) -> torch.Tensor:
    images, targets = batch
    images = [im.to(device, non_blocking=True) for im in images]
    targets = [{k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in t.items()}
               for t in targets]
    return sum(model(images, targets).values())


SETUPS: dict[str, Setup] = {
    "classification": Setup({"cpu": None, "cuda": None}, {"cpu": {}, "cuda": {}}, bare_classification, GOAL),
    "super_resolution": Setup({"cpu": "skimage_edsr_tiny_x2", "cuda": None}, {"cpu": {}, "cuda": {}},
                              bare_super_resolution, GOAL),
    "detection": Setup({"cpu": None, "cuda": None},
                       {"cpu": {"model.arch": "retinanet", "data.num_train": 800}, "cuda": {}}, bare_detection),
    "segmentation": Setup({"cpu": None, "cuda": None}, {"cpu": {"data.num_train": 400, "data.num_val": 100},
                                                         "cuda": {}}, None),
    "speech": Setup({"cpu": None, "cuda": None}, {"cpu": {}, "cuda": {}}, None),
}


@dataclass
class Result:
    task: str
    batch: int
    engine: list[float] = field(default_factory=list)  # samples/s per round
    bare: list[float] = field(default_factory=list)
    loader: float = 0.0
    step: float = 0.0

    def row(self) -> dict[str, Any]:
        engine = statistics.median(self.engine) if self.engine else None
        bare = statistics.median(self.bare) if self.bare else None
        return {"task": self.task, "batch": self.batch, "engine": engine, "bare": bare,
                "ratio": engine / bare if engine and bare else None,
                "round_ratios": [round(e / b, 3) for e, b in zip(self.engine, self.bare)],
                "loader_alone": self.loader, "step_alone": self.step}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_trainer(name: str, device: torch.device, root: Path, extra: dict[str, Any] | None = None) -> Any:
    """The engine's Trainer for ``name``'s benchmark recipe, never evaluating, in a fresh run folder."""
    task = load_task(name)
    setup = SETUPS[name]
    overrides = {**setup.overrides[device.type], "trainer.device": device.type, "trainer.max_steps": 10**7,
                 "trainer.eval_every": 10**7, "trainer.progress": False, "trainer.runs_dir": str(root),
                 "trainer.run_name": name, **(extra or {})}
    cfg = load_config(task.config_class, task.recipe_path(setup.recipe[device.type]), overrides)
    task.check(cfg)
    run = RunFolder.claim(root / name, name, resume=False)
    return task.make_trainer(cfg, run), run


def bare_loop(trainer: Any, device: torch.device) -> Callable[[int], float]:
    """A reference-style loop over the trainer's dataset with its own copy of the model; returns ``run(n)``."""
    task, cfg = trainer.task, trainer.cfg
    torch.manual_seed(cfg.seed)
    model = task.build_model(cfg, trainer.data.info).to(device)
    if trainer.channels_last:
        model = task.to_channels_last(model)
    model.train()
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, 10**7, cfg.optim)
    scaler = torch.amp.GradScaler("cuda", enabled=trainer.amp_dtype is torch.float16)
    workers = trainer.num_workers
    loader = DataLoader(trainer.data.train, batch_size=trainer.local_batch, shuffle=True, drop_last=True,
                        num_workers=workers, pin_memory=device.type == "cuda", collate_fn=trainer.data.collate_fn,
                        persistent_workers=workers > 0)
    step_fn = SETUPS[task.name].bare
    state: dict[str, Any] = {"it": iter(loader)}

    def run(n: int) -> float:
        _sync(device)
        start = time.perf_counter()
        samples = 0
        for _ in range(n):
            batch = next(state["it"], None)
            if batch is None:
                state["it"] = iter(loader)
                batch = next(state["it"])
            with autocast(device, trainer.forward_dtype):
                loss = step_fn(model, batch, device)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.optim.grad_clip > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            samples += task.batch_size(batch)
        _sync(device)
        return samples / (time.perf_counter() - start)

    return run


def engine_rounds(trainer: Any, device: torch.device) -> Callable[[int], float]:
    def run(n: int) -> float:
        _sync(device)
        start, first = time.perf_counter(), trainer.step
        trainer.fit(stop_at=trainer.step + n)
        _sync(device)
        return (trainer.step - first) * trainer.local_batch / (time.perf_counter() - start)

    return run


def loader_alone(trainer: Any, n: int) -> float:
    """Samples/s of the engine's training loader with nothing else running."""
    epoch, offset = divmod(trainer.step, trainer.steps_per_epoch)
    trainer.sampler.set_epoch(epoch, offset)
    it = iter(trainer.train_loader)
    next(it)  # workers up
    start, samples = time.perf_counter(), 0
    for _ in range(n):
        batch = next(it, None)
        if batch is None:
            break
        samples += trainer.task.batch_size(batch)
    return samples / (time.perf_counter() - start)


def step_alone(trainer: Any, device: torch.device, n: int) -> float:
    """Samples/s of the engine's step on one batch already loaded (no loader in the way)."""
    batch = next(iter(trainer.train_loader))
    trainer._train_step(batch)  # warm-up (cuDNN autotuning, compile)
    _sync(device)
    start = time.perf_counter()
    for _ in range(n):
        trainer._train_step(batch)
    _sync(device)
    return n * trainer.task.batch_size(batch) / (time.perf_counter() - start)


def measure(name: str, device: torch.device, steps: int, rounds: int, root: Path,
            extra: dict[str, Any] | None = None) -> Result:
    """Interleaved engine/bare rounds (after one warm-up round each), then loader alone and step alone."""
    trainer, run = build_trainer(name, device, root, extra)
    try:
        result = Result(name, trainer.local_batch)
        engine = engine_rounds(trainer, device)
        bare = bare_loop(trainer, device) if SETUPS[name].bare is not None else None
        engine(max(2, steps // 2))
        if bare is not None:
            bare(max(2, steps // 2))
        for r in range(rounds):
            order = [("engine", engine), ("bare", bare)] if r % 2 == 0 else [("bare", bare), ("engine", engine)]
            for label, fn in order:
                if fn is not None:
                    getattr(result, label).append(fn(steps))
            print(f"  {name} round {r + 1}/{rounds}: engine {result.engine[-1]:.1f}/s"
                  + (f", bare {result.bare[-1]:.1f}/s" if result.bare else ""), file=sys.stderr)
        result.loader = loader_alone(trainer, 4 * steps)
        result.step = step_alone(trainer, device, steps)
        return result
    finally:
        run.release()


def table(rows: list[dict[str, Any]]) -> str:
    def fmt(v: float | None, spec: str = ".1f") -> str:
        return "n/a" if v is None else format(v, spec)

    lines = ["| task | batch | engine samples/s | bare samples/s | engine/bare | loader alone | step alone |"
             " loader/step |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['task']} | {r['batch']} | {fmt(r['engine'])} | {fmt(r['bare'])} | {fmt(r['ratio'], '.3f')}"
                     f" | {fmt(r['loader_alone'])} | {fmt(r['step_alone'])} | "
                     f"{fmt(r['loader_alone'] / r['step_alone'] if r['step_alone'] else None, '.2f')} |")
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["task"] for r in rows]
    series = [("engine", "engine step + loader"), ("bare", "bare reference loop"), ("loader_alone", "loader alone"),
              ("step_alone", "step alone")]
    fig, ax = plt.subplots(figsize=(1.8 + 2.2 * len(rows), 3.6))
    width = 0.2
    for k, (key, label) in enumerate(series):
        values = [r[key] or 0.0 for r in rows]
        ax.bar([i + (k - 1.5) * width for i in range(len(rows))], values, width, label=label)
    ax.set_xticks(range(len(rows)), names)
    ax.set(ylabel="samples/s", title=title)
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=["classification", "super_resolution"], choices=sorted(SETUPS))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=0, help="steps per timed round (0: 10 on CPU, 50 on CUDA)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/engine_throughput"),
                   help="writes <out>.json and <out>.png")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    steps = args.steps or (50 if device.type == "cuda" else 10)
    rows = []
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        for name in args.tasks:
            rows.append(measure(name, device, steps, args.rounds, Path(tmp)).row())
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU"
    header = (f"engine vs bare loop on {where}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"{args.rounds} interleaved rounds of {steps} steps (medians)")
    print(header)
    print(table(rows))
    for r in rows:
        goal = SETUPS[r["task"]].goal
        if goal is not None and r["ratio"] is not None and device.type == "cpu":
            print(f"{r['task']}: engine/bare {r['ratio']:.3f} {'meets' if r['ratio'] >= goal else 'MISSES'} "
                  f"the goal >= {goal}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({"header": header, "rows": rows}, indent=1))
    plot(rows, args.out.with_suffix(".png"), f"engine vs bare ({where})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
