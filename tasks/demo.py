"""``make demo``: train every task briefly on its embedded offline data, evaluate, report.

Each stage is the task's default recipe with a CPU-sized budget; the run folders land in
``runs/demo-<time>/<task>/`` and one cross-domain report is written over them. Pass task
names to run only some (``python -m tasks.demo classification detection``).

Stages run side by side, one process per core, each with one thread (``--jobs 1``: one
after another with the machine's threads). The models are small, so two 1-thread trainings
get more from 2 cores than one 2-thread training does (``make test`` measured the same:
819 s in one process, 471 s in two). Longest stages start first; a progress line names
each running stage's step every 30 s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

from tasks import api
from tasks.core.cli_errors import run_cli
from tasks.core.config import load_config
from tasks.core.idx import fashion_mnist_available
from tasks.core.runlog import read_jsonl
from tasks.registry import TASKS, load_task

#: the order the demo reports the tasks in (each uses its task's "demo" budget)
STAGES = ("classification", "detection", "segmentation", "super_resolution", "speech", "dqn", "dynamics")
#: the order side-by-side stages start in: longest first (stage seconds measured in `make demo`)
LONGEST_FIRST = ("detection", "speech", "classification", "dqn", "super_resolution", "segmentation", "dynamics")
#: how often the side-by-side demo prints each running stage's step
PROGRESS_EVERY_S = 30.0


def run_stage(task_name: str, runs_dir: Path, side_by_side: bool = False, extra: dict | None = None) -> dict:
    """Train ``task_name`` at its demo budget into ``runs_dir/<task>/demo`` and return its headline metrics.

    ``side_by_side``: one thread and no progress bar (the parent prints progress lines instead).
    ``extra`` overrides go last (tests shorten the budget with them).
    """
    recipe, overrides = api.train_overrides(task_name, "demo")
    overrides.update({"trainer.runs_dir": str(runs_dir), "trainer.run_name": "demo"})
    if side_by_side:
        overrides.update({"trainer.threads": 1, "trainer.progress": False})
    overrides.update(extra or {})
    if task_name == "classification" and not fashion_mnist_available():
        print("Fashion-MNIST is missing (run: sudo apt-get install dataset-fashion-mnist); "
              "the demo uses scikit-learn digits instead", file=sys.stderr)
        overrides.update({"data.dataset": "digits", "data.hflip": False, "trainer.max_steps": 300})
    started = time.perf_counter()
    run = api.train(task_name, overrides, recipe=recipe)
    if len(read_jsonl(run.dir / "metrics.jsonl")) == 1 and run.metrics:
        # one evaluation, at the last step: it scored best.pt on the whole validation set and drew its
        # pictures already, so `rsuite evaluate` would repeat it exactly
        metrics = run.metrics
    else:  # several evaluations (DQN): best.pt is scored again with the task's final evaluation
        metrics = api.evaluate(run.dir)
    run_dir = run.dir
    summary = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float) and k != "eval_seconds"}
    print(f"[{task_name}] {json.dumps(summary)} in {time.perf_counter() - started:.0f} s -> {run_dir}",
          file=sys.stderr)
    return summary


def _max_steps(task_name: str) -> int:
    """The demo budget's step count (its recipe's, unless the budget overrides it)."""
    recipe, overrides = api.train_overrides(task_name, "demo")
    task = load_task(task_name)
    return int(load_config(task.config_class, task.recipe_path(recipe), overrides).trainer.max_steps)


def _step_of(runs_dir: Path, task_name: str) -> int:
    rows = read_jsonl(runs_dir / task_name / "demo" / "train.jsonl")
    return int(rows[-1]["step"]) if rows else 0


def run_side_by_side(wanted: list[str], runs_dir: Path, jobs: int, extra: dict | None = None,
                     progress_every: float = PROGRESS_EVERY_S) -> dict[str, dict]:
    """The stages in ``jobs`` processes, longest first; a progress line every ``progress_every`` seconds."""
    order = sorted(wanted, key=lambda t: LONGEST_FIRST.index(t) if t in LONGEST_FIRST else -1)
    steps = {t: _max_steps(t) for t in order}
    results: dict[str, dict] = {}
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch thread pools
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        running: dict[Future, str] = {pool.submit(run_stage, t, runs_dir, True, extra): t for t in order}
        while running:
            done, _ = wait(running, timeout=progress_every, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    results[running.pop(future)] = future.result()
                except BaseException:  # a stage failed: start no further ones, let the running ones finish
                    for waiting in running:
                        waiting.cancel()
                    raise
            started = [t for t in running.values() if (runs_dir / t / "demo").is_dir()]
            if started and not done:
                print("[progress] " + ", ".join(f"{t} step {_step_of(runs_dir, t)}/{steps[t]}" for t in started),
                      file=sys.stderr, flush=True)
    return {t: results[t] for t in wanted}


def main(argv: list[str] | None = None) -> None:
    from tasks.core.report import write_report

    parser = argparse.ArgumentParser(prog="python -m tasks.demo", description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="*", help=f"stages to run (default: all of {', '.join(STAGES)})")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="stages trained side by side, one thread each (default: 2, or 1 on a 1-core machine); "
                             "1 runs them one after another with the machine's threads")
    args = parser.parse_args(argv)
    wanted = args.tasks or [t for t in STAGES if t in TASKS]
    unknown = [t for t in wanted if t not in STAGES or t not in TASKS]
    if unknown:
        print(f"error: no demo stage for {', '.join(unknown)}; choose from {', '.join(STAGES)}", file=sys.stderr)
        sys.exit(2)
    if args.jobs < 1:
        print(f"error: --jobs {args.jobs} must be >= 1", file=sys.stderr)
        sys.exit(2)
    runs_dir = Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    if args.jobs > 1 and len(wanted) > 1:
        results = run_side_by_side(wanted, runs_dir, args.jobs)
    else:
        results = {name: run_stage(name, runs_dir) for name in wanted}
    report = write_report(runs_dir)
    print("\n" + "\n".join(f"{name:>18}: {json.dumps(m)}" for name, m in results.items()), file=sys.stderr)
    print(f"report: {report} (figures beside it; curves.png in each run folder)", file=sys.stderr)
    print(runs_dir)


if __name__ == "__main__":
    run_cli(main)
