"""Transfer across tasks: a resnet18 trained on Fashion-MNIST classification as the start of detection.

What: trains ``rsuite train classification backbone.name=resnet18`` on Fashion-MNIST (gray
28x28 images, the default recipe's budget), then, for each seed, trains detection on the
embedded scenes at the detection demo budget (``make demo``: RetinaNet, 600 steps of batch
8 on 800 scenes) in each arm:

* ``scratch``: the demo budget as it is;
* ``transfer``: the same settings, plus ``backbone.weights=<the classification run>`` (the
  gray first convolution is tiled to RGB, everything else is copied);
* ``finetune``: the ``scenes_retinanet_resnet18_finetune`` recipe (frozen BN, stem and first
  stage fixed, backbone at half the learning rate) at the same budget, from the same weights.

The scenes are Fashion-MNIST items pasted on textures, so the classifier has seen the
objects (in gray, alone, at 28 px) but not the scenes. Prints a table of mAP@50 and mAP per
seed with mean and standard deviation, writes it to ``--out`` as Markdown and a PNG of
mAP@50 per seed and arm beside it.

    python benchmarks/transfer.py --seeds 0,1,2 --out benchmarks/results/transfer.md
    python benchmarks/transfer.py --seeds 0 --cls-steps 2 --det-steps 2 --arms scratch,transfer \\
        data.num_train=16 data.num_val=8 data.image_size=64 trainer.progress=false       # smoke test
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from run_reuse import finished_run

import tasks
from tasks.api import train_overrides
from tasks.core.runlog import read_jsonl

ARMS = {
    "scratch": ("from scratch (demo budget)", None, False),
    "transfer": ("`backbone.weights=<classification run>`", None, True),
    "finetune": ("`--config scenes_retinanet_resnet18_finetune` + weights", "scenes_retinanet_resnet18_finetune", True),
}


def pretrain(args: argparse.Namespace, runs: Path) -> tuple[Path, dict[str, Any]]:
    """The classification run whose backbone every transfer arm starts from."""
    source = runs / "classification" / "classification-resnet18"
    done = finished_run(source, args.cls_steps)
    if done:
        return source, {"top1": done["val/top1"], "seconds": done["train_seconds"]}
    started = time.perf_counter()
    run = tasks.train("classification", {"backbone.name": "resnet18", "seed": 0, "trainer.runs_dir": str(runs),
                                         "trainer.run_name": "classification-resnet18",
                                         "trainer.threads": args.threads, "trainer.max_steps": args.cls_steps,
                                         "trainer.eval_every": args.cls_steps,
                                         "trainer.progress": args.progress})
    return run.dir, {"top1": run.metrics.get("top1", float("nan")), "seconds": time.perf_counter() - started}


def detect(arm: str, seed: int, weights: Path, args: argparse.Namespace, runs: Path) -> dict[str, float]:
    """One detection run of ``arm``; its final mAP@50, mAP and training seconds."""
    recipe, overrides = train_overrides("detection", "demo")
    _, arm_recipe, with_weights = ARMS[arm]
    settings = {**overrides, "seed": seed, "trainer.runs_dir": str(runs), "trainer.run_name": f"{arm}-seed{seed}",
                "trainer.threads": args.threads, "trainer.progress": args.progress}
    if args.det_steps:
        settings.update({"trainer.max_steps": args.det_steps, "trainer.eval_every": args.det_steps})
    if with_weights:
        settings["backbone.weights"] = str(weights)
    settings.update(dict(item.split("=", 1) for item in args.overrides))
    done = finished_run(runs / "detection" / settings["trainer.run_name"], int(settings["trainer.max_steps"]))
    if done:  # a finished run of an earlier invocation with --runs: reuse its result
        return {"map_50": done["val/map_50"], "map": done["val/map"], "seconds": done["train_seconds"]}
    run = tasks.train("detection", settings, recipe=arm_recipe or recipe).dir
    last = read_jsonl(run / "metrics.jsonl")[-1]
    return {"map_50": last["val/map_50"], "map": last["val/map"], "seconds": last["train_seconds"]}


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    return f"{mean:.3f} ± {statistics.stdev(values):.3f}" if len(values) > 1 else f"{mean:.3f}"


def plot(results: dict[str, dict[int, dict[str, float]]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for k, (arm, per_seed) in enumerate(results.items()):
        values = [per_seed[s]["map_50"] for s in sorted(per_seed)]
        ax.scatter([k] * len(values), values, label=arm, zorder=3)
        ax.hlines(statistics.fmean(values), k - 0.25, k + 0.25, colors="black")
    ax.set_xticks(range(len(results)), list(results))
    ax.set(ylabel="mAP@50 (validation scenes)", title="detection: from scratch vs from a Fashion-MNIST resnet18")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2", help="detection seeds (the classification run is seed 0)")
    p.add_argument("--arms", default="scratch,transfer", help=f"comma-separated, of: {', '.join(ARMS)}")
    p.add_argument("--cls-steps", type=int, default=400, help="classification steps (the default recipe's)")
    p.add_argument("--det-steps", type=int, default=0, help="detection steps; 0 = the demo budget's 600")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    p.add_argument("--runs", help="keep the run folders here (default: a temporary folder); finished runs "
                                  "found there are reused, so an interrupted measurement continues")
    p.add_argument("--out", help="write the Markdown table here (and a PNG beside it)")
    p.add_argument("--progress", action="store_true", help="show progress bars")
    p.add_argument("overrides", nargs="*", help="detection overrides for every arm, e.g. data.num_train=400")
    args = p.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s]
    arms = [a for a in args.arms.split(",") if a]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        p.error(f"unknown arm(s) {', '.join(unknown)}; choose from {', '.join(ARMS)}")
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(args.runs or tmp)
        source, pre = pretrain(args, runs)
        results = {arm: {seed: detect(arm, seed, source, args, runs) for seed in seeds} for arm in arms}
    extra = f", overrides `{' '.join(args.overrides)}`" if args.overrides else ""
    steps = args.det_steps or 600
    lines = [f"Detection (RetinaNet, resnet18, {steps} steps of batch 8) on the embedded scenes, from scratch vs "
             f"from a resnet18 trained {args.cls_steps} steps on Fashion-MNIST classification (val top-1 "
             f"{pre['top1']:.3f}, {pre['seconds']:.0f} s); seeds {args.seeds}; {platform.machine()} CPU, "
             f"{torch.get_num_threads()} threads, torch {torch.__version__}{extra}", "",
             "| start | " + " | ".join(f"mAP@50 seed {s}" for s in seeds) + " | mAP@50 mean ± std | mAP mean ± std "
             "| train s (mean) |", "| --- |" + " ---: |" * (len(seeds) + 3)]
    for arm in arms:
        r = results[arm]
        lines.append(f"| {ARMS[arm][0]} | " + " | ".join(f"{r[s]['map_50']:.3f}" for s in seeds)
                     + f" | {spread([r[s]['map_50'] for s in seeds])} | {spread([r[s]['map'] for s in seeds])} | "
                     f"{statistics.fmean(r[s]['seconds'] for s in seeds):.0f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"plot: {plot(results, out.with_suffix('.png'))}")


if __name__ == "__main__":
    main()
