"""Faster R-CNN: torchvision's stock ResNet-50-FPN vs ours on the registry's resnet50.

What: trains torchvision's ``fasterrcnn_resnet50_fpn(weights=None, weights_backbone=None)``
and our Faster R-CNN on ``backbone.name=resnet50`` (FPN-256 over all four stages, like the
stock model) on the embedded scenes. Both go through the same engine run (``rsuite train
detection``'s loop): same data, batches, anchors, RPN/RoI sampling, optimizer, schedule and
seed; only the backbone + FPN code differs. A third contender trains ours with torchvision's
initialisation (``backbone.zero_init_last=false``), separating our code from our init
default. Prints mAP, mAP@50, mAP@75, parameters and training seconds side by side.

Why: the backbone library claims to be a drop-in ResNet; on detection this means our
resnet50 must train at least as well as torchvision's own inside torchvision's detector.

    python benchmarks/detection_vs_torchvision.py --steps 400 --out benchmarks/RESULTS.md
    python benchmarks/detection_vs_torchvision.py --steps 2 data.num_train=16 data.num_val=8   # smoke test
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models.detection import fasterrcnn_resnet50_fpn

import tasks
from tasks.core.runlog import read_jsonl
from tasks.detection.config import DetectionConfig
from tasks.detection.model import build_model
from tasks.detection.task import DetectionTask

#: our model's settings that make it the stock model's twin (FPN-256 on C2-C5 + max-pool P6)
TWIN = ["backbone.name=resnet50", "model.fpn_channels=256", "model.returned_stages=[0,1,2,3]",
        "model.proposals=300", "model.rois_per_image=128"]


class StockFasterRCNN(DetectionTask):
    """The detection task with torchvision's stock builder in place of ours."""

    def build_model(self, cfg: DetectionConfig, info: dict[str, Any]) -> nn.Module:  # type: ignore[override]
        reference = build_model(cfg, info)  # borrow its anchors, sizes and sampling so only the backbone differs
        return fasterrcnn_resnet50_fpn(
            weights=None, weights_backbone=None, num_classes=info["num_classes"],
            min_size=reference.transform.min_size[0], max_size=reference.transform.max_size,
            rpn_anchor_generator=reference.rpn.anchor_generator,
            box_batch_size_per_image=reference.roi_heads.fg_bg_sampler.batch_size_per_image,
            box_score_thresh=reference.roi_heads.score_thresh,
            rpn_pre_nms_top_n_train=reference.rpn._pre_nms_top_n["training"],
            rpn_post_nms_top_n_train=reference.rpn._post_nms_top_n["training"],
            rpn_pre_nms_top_n_test=reference.rpn._pre_nms_top_n["testing"],
            rpn_post_nms_top_n_test=reference.rpn._post_nms_top_n["testing"])


def run_one(task: DetectionTask, name: str, args: argparse.Namespace, runs: Path,
            settings: list[str]) -> dict[str, float]:
    """Train one model through the engine; its final validation metrics, params and training seconds."""
    run_dir = tasks.train(task, [*TWIN, *settings, f"seed={args.seed}", f"trainer.max_steps={args.steps}",
                                 f"trainer.eval_every={args.steps}", f"trainer.log_every={max(1, args.steps // 20)}",
                                 f"trainer.threads={args.threads}", f"trainer.runs_dir={runs}",
                                 f"trainer.run_name={name}", *args.overrides]).dir
    last = read_jsonl(run_dir / "metrics.jsonl")[-1]
    return {"map": last["val/map"], "map_50": last["val/map_50"], "map_75": last["val/map_75"],
            "params": last["params"], "seconds": last["train_seconds"]}


#: name -> (table label, task, extra settings). Our blocks zero-init their last BN scale by default
#: (Goyal et al. 2017); torchvision's resnet50 does not (zero_init_residual=False), so the third
#: contender separates our code from our init default.
CONTENDERS = {
    "torchvision": ("torchvision `fasterrcnn_resnet50_fpn`", StockFasterRCNN, []),
    "ours": ("residual-suite `resnet50` + `adapters.fpn`", DetectionTask, []),
    "ours-torchvision-init": ("residual-suite, `backbone.zero_init_last=false` (torchvision's init)", DetectionTask,
                              ["backbone.zero_init_last=false"]),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    p.add_argument("--contenders", nargs="+", choices=sorted(CONTENDERS), default=list(CONTENDERS))
    p.add_argument("--runs", help="keep the two run folders here (default: a temporary folder)")
    p.add_argument("--out", help="append the Markdown table to this file")
    p.add_argument("overrides", nargs="*", help="detection config overrides for both, e.g. data.num_train=500")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(args.runs or tmp)
        rows = [(CONTENDERS[name][0], run_one(CONTENDERS[name][1](), name, args, runs, CONTENDERS[name][2]))
                for name in args.contenders]
    extra = f", overrides: `{' '.join(args.overrides)}`" if args.overrides else ""
    lines = [f"Faster R-CNN R50-FPN from scratch on the embedded scenes, {args.steps} steps of batch 8, seed "
             f"{args.seed}, {platform.machine()} CPU, {torch.get_num_threads()} threads, torch {torch.__version__}"
             f"{extra}", "",
             "| model | params | mAP | mAP@50 | mAP@75 | train s |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {n} | {r['params'] / 1e6:.2f}M | {r['map']:.3f} | {r['map_50']:.3f} | {r['map_75']:.3f} | "
              f"{r['seconds']:.0f} |" for n, r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()
