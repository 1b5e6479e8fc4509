"""``make demo``: train the main job on the embedded offline data, evaluate it, say where it is.

Classification on Fashion-MNIST with resnet20 for a short CPU budget. When the Debian
package is missing the demo says so in one line and uses scikit-learn's digits instead.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tasks.core.cli_errors import run_cli
from tasks.core.idx import fashion_mnist_available


def main() -> None:
    from tasks.classification.task import TASK
    from tasks.core.run import evaluate_run, train_main

    overrides = [f"trainer.run_name=demo-{time.strftime('%Y%m%d-%H%M%S')}", *sys.argv[1:]]
    if not fashion_mnist_available():
        print("Fashion-MNIST is missing (run: sudo apt-get install dataset-fashion-mnist); "
              "demo uses scikit-learn digits instead", file=sys.stderr)
        overrides += ["data.dataset=digits", "data.hflip=false", "trainer.max_steps=300"]
    started = time.perf_counter()
    run_dir = train_main(TASK, overrides)
    metrics = evaluate_run(TASK, run_dir)
    print(json.dumps({k: metrics[k] for k in ("top1", "top5", "loss")}), file=sys.stderr)
    print(f"demo finished in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    for name in ("config.yaml", "metrics.jsonl", "curves.png", "confusion.png", "checkpoints/best.pt"):
        print(f"  {Path(run_dir) / name}", file=sys.stderr)
    print(run_dir)


if __name__ == "__main__":
    run_cli(main)
