"""``make demo``: train every task briefly on its embedded offline data, evaluate, report.

Each stage is the task's default recipe with a CPU-sized budget; the run folders land in
``runs/demo-<time>/<task>/`` and one cross-domain report is written over them. Pass task
names to run only some (``python -m tasks.demo classification detection``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tasks import api
from tasks.core.cli_errors import run_cli
from tasks.core.idx import fashion_mnist_available
from tasks.core.runlog import read_jsonl
from tasks.registry import TASKS

#: the order the demo runs the tasks in (each uses its task's "demo" budget)
STAGES = ("classification", "detection", "segmentation", "super_resolution", "speech", "dqn", "dynamics")


def run_stage(task_name: str, runs_dir: Path) -> dict:
    recipe, overrides = api.train_overrides(task_name, "demo")
    overrides.update({"trainer.runs_dir": str(runs_dir), "trainer.run_name": "demo"})
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


def main() -> None:
    from tasks.core.report import write_report

    wanted = sys.argv[1:] or [t for t in STAGES if t in TASKS]
    unknown = [t for t in wanted if t not in STAGES or t not in TASKS]
    if unknown:
        print(f"error: no demo stage for {', '.join(unknown)}; choose from {', '.join(STAGES)}", file=sys.stderr)
        sys.exit(2)
    runs_dir = Path("runs") / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    results = {name: run_stage(name, runs_dir) for name in wanted}
    report = write_report(runs_dir)
    print("\n" + "\n".join(f"{name:>18}: {json.dumps(m)}" for name, m in results.items()), file=sys.stderr)
    print(f"report: {report} (figures beside it; curves.png in each run folder)", file=sys.stderr)
    print(runs_dir)


if __name__ == "__main__":
    run_cli(main)
